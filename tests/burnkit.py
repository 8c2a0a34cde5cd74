"""A profile written for a secure-channel case, a Phone Home server for it, and a burn plan.

Every profile here has the same URL and ServiceInfo, so one server serves a whole module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from provision.burn import BurnPlan
from provision.phonehome.server import PhoneHomeServer
from provision.phonehome.serviceinfo import ServiceInfo, render_service_info
from provision.profile import Profile, load_profile
from provision.simulated import url_host_port
from provision.verify import VerifyConfig

URL = "http://tps.keys.test:7888/cgi-bin/home/index.cgi"
ISSUER = "Key Tests"
OPERATION = "http://tps.keys.test:7888/nk_service"
EXTERNAL_AUTHENTICATE = (0x84, 0x82)


Value = str | int | bool


def _yaml(value: Value) -> str:
    # Strings are quoted (the quoting rule of profiles/README.md), numbers and booleans not.
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int) else f'"{value}"'


def profile_text(channel: dict[str, Value], key_sets: list[dict[str, Value]]) -> str:
    """A format 1 profile with this ``secure_channel`` and these key sets."""
    lines = [
        "format: 1",
        "name: key-tests",
        f"issuer_name: {ISSUER}",
        f'phone_home_url: "{URL}"',
        "service_info:",
        f'  Operation: "{OPERATION}"',
        "secure_channel:",
        *(f"  {name}: {_yaml(value)}" for name, value in channel.items()),
        "key_sets:",
    ]
    for key_set in key_sets:
        for n, (name, value) in enumerate(key_set.items()):
            lines.append(f"  {'  ' if n else '- '}{name}: {_yaml(value)}")
    return "\n".join(lines) + "\n"


def write_profile(directory: Path, text: str, name: str = "profile.yaml") -> Profile:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return load_profile(path)


@contextmanager
def phone_home() -> Iterator[VerifyConfig]:
    """A local Phone Home server for :data:`URL`, and the verify settings that reach it."""
    body = render_service_info(ServiceInfo(ISSUER, (("Operation", OPERATION),)))
    with PhoneHomeServer({"/cgi-bin/home/index.cgi": body}) as server:
        connect_to = {url_host_port(URL): (server.host, server.port)}
        yield VerifyConfig(connect_to=connect_to, timeout=5)


def plan_for(profile: Profile, verify: VerifyConfig) -> BurnPlan:
    return BurnPlan.from_profile(profile, verify=verify)


def padded_url() -> bytes:
    return URL.encode().ljust(224, b"\x00")
