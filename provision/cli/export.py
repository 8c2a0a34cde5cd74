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
from typing import TYPE_CHECKING

from ._common import EXIT_OK, CliError, Subparsers, refuse_overwriting

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from ..profile import Profile

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
    from ..phonehome.tps_cfg import render_issuer_info

    return render_issuer_info(profile.token_type, profile.phone_home_url)


def phonehome_xml(profile: Profile) -> str:
    from ..phonehome.serviceinfo import render_service_info

    info = profile.expected_service_info()
    return render_service_info(info).decode("utf-8")


def esc_prefs(profile: Profile) -> str:
    from ..phonehome.esc_prefs import GLOBAL_PHONE_HOME_URL
    from ..phonehome.prefs_file import render_pref

    return render_pref(GLOBAL_PHONE_HOME_URL, profile.phone_home_url, function="pref") + "\n"


def cmd_export(args: argparse.Namespace) -> int:
    from ..phonehome.prefs_file import write_atomically
    from ..profile import load_profile

    wanted = [
        (args.tps_cfg, tps_cfg),
        (args.phonehome_xml, phonehome_xml),
        (args.esc_prefs, esc_prefs),
    ]
    if all(target is None for target, _ in wanted):
        raise CliError("nothing to export: give --tps-cfg, --phonehome-xml or --esc-prefs")
    profile = load_profile(args.profile)
    inputs: dict[str, Path | str | None] = {"the profile": profile.path}
    inputs.update({f"its base {base}": base for base in profile.bases})
    for target, _ in wanted:
        if target is not None and target != STDOUT:
            refuse_overwriting("the output", target, inputs)

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
