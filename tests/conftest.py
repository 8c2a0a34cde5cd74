"""Fixtures shared across test modules: the PC/SC tier's pcscd and bridge (tests/pcscd.py)."""

pytest_plugins = ["tests.pcscd"]
