"""Fixtures shared across test modules: the PC/SC tier's pcscd and bridge (tests/pcscd.py).

``--no-skips`` turns every skipped test into a failure: CI installs every tier's Debian
packages, so there a skip can only mean a tier silently stopped running.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.pcscd"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-skips", action="store_true", help="fail instead of skipping a test")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.config.getoption("--no-skips"):
        report.outcome = "failed"
        report.longrepr = f"skipped, and --no-skips was given: {report.longrepr}"
