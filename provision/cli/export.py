"""``provision export PROFILE``: the configuration around the token, from the one profile.

- ``--tps-cfg``: the TPS ``CS.cfg`` lines that make TPS write the Phone Home URL when it
  formats a token of the profile's token type (esc-phone-home.md §3.1);
- ``--phonehome-xml``: the ServiceInfo document the Phone Home URL must serve, TPS's
  ``phoneHome.xml`` (§3.3);
- ``--esc-prefs``: the ESC default that gives tokens without issuer info a Phone Home URL,
  the ``esc.global.phone.home.url`` line of ``esc-prefs.js`` (§2.2).

``-`` writes to standard output; a file is replaced atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..phonehome.esc_prefs import GLOBAL_PHONE_HOME_URL
from ..phonehome.prefs_file import render_pref, write_atomically
from ..phonehome.serviceinfo import render_service_info
from ..phonehome.tps_cfg import render_issuer_info
from ..profile import Profile, load_profile
from ._common import EXIT_OK, CliError, Subparsers

STDOUT = "-"


def register(commands: Subparsers) -> None:
    export = commands.add_parser(
        "export", help="write the TPS settings, phoneHome.xml or the ESC default for a profile"
    )
    export.add_argument("profile", type=Path, help="issuer profile (YAML)")
    export.add_argument("--tps-cfg", metavar="FILE", help="TPS CS.cfg issuer info lines")
    export.add_argument("--phonehome-xml", metavar="FILE", help="the ServiceInfo document")
    export.add_argument("--esc-prefs", metavar="FILE", help="the esc-prefs.js global URL line")
    export.set_defaults(handler=cmd_export)


def tps_cfg(profile: Profile) -> str:
    return render_issuer_info(profile.token_type, profile.phone_home_url)


def phonehome_xml(profile: Profile) -> str:
    info = profile.expected_service_info()
    return render_service_info(info).decode("utf-8")


def esc_prefs(profile: Profile) -> str:
    return render_pref(GLOBAL_PHONE_HOME_URL, profile.phone_home_url, function="pref") + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    wanted = [
        (args.tps_cfg, tps_cfg),
        (args.phonehome_xml, phonehome_xml),
        (args.esc_prefs, esc_prefs),
    ]
    if all(target is None for target, _ in wanted):
        raise CliError("nothing to export: give --tps-cfg, --phonehome-xml or --esc-prefs")
    profile = load_profile(args.profile)

    # Render everything before writing anything, so a bad value leaves no file behind.
    rendered = []
    for target, render in wanted:
        if target is not None:
            try:
                rendered.append((target, render(profile)))
            except ValueError as exc:
                raise CliError(f"{profile.path}: cannot export: {exc}") from None
    for target, text in rendered:
        if target == STDOUT:
            sys.stdout.write(text)
        else:
            write_atomically(target, text, new_mode=0o644)
    sys.stdout.flush()
    return EXIT_OK
