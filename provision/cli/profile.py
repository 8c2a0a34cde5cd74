"""``provision profile check DIR``: validate every profile in a directory tree.

For each ``*.yaml`` / ``*.yml`` file it says whether it loads, what it inherits and from
where; a base that only makes sense extended (it lacks issuer data) is reported as such,
not as an error. Across the directory it looks for two profiles with one name, and for one
Phone Home URL meant to answer two different ways.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ._common import EXIT_OK, EXIT_USAGE, CliError, Subparsers

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from ..profile import Profile, ProfileError

SUFFIXES = (".yaml", ".yml")


def register(commands: Subparsers) -> None:
    profile = commands.add_parser("profile", help="check issuer profiles")
    actions: Any = profile.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="validate every profile in DIR and show what each one inherits"
    )
    check.add_argument("directory", type=Path, metavar="DIR")
    check.set_defaults(handler=cmd_check)


@dataclass
class Checked:
    """One file's verdict."""

    path: Path
    profile: Profile | None = None
    error: ProfileError | None = None
    base_of: list[Path] | None = None


def cmd_check(args: argparse.Namespace) -> int:
    checked = check_directory(args.directory)
    problems = cross_check([c.profile for c in checked if c.profile is not None])
    out = sys.stdout
    for item in checked:
        print_checked(item, out)
    for problem in problems:
        print(problem, file=out)

    errors = sum(1 for c in checked if c.error is not None and not _base_only(c))
    bases = sum(1 for c in checked if _base_only(c))
    ok = sum(1 for c in checked if c.profile is not None)
    errors += sum(1 for p in problems if p.startswith("error:"))
    files = "file" if len(checked) == 1 else "files"
    plural = "error" if errors == 1 else "errors"
    print(f"{len(checked)} {files}: {ok} ok, {bases} base only, {errors} {plural}", file=out)
    return EXIT_OK if errors == 0 else EXIT_USAGE


def check_directory(directory: Path) -> list[Checked]:
    """Load every profile file under ``directory``, in path order."""
    from ..profile import ProfileError, load_profile

    if not directory.is_dir():
        raise CliError(f"{directory} is not a directory")
    files = sorted(p for p in directory.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    if not files:
        raise CliError(f"no profiles (*.yaml, *.yml) in {directory}")

    checked = []
    for path in files:
        try:
            checked.append(Checked(path, profile=load_profile(path)))
        except ProfileError as exc:
            checked.append(Checked(path, error=exc))

    children: dict[Path, list[Path]] = defaultdict(list)
    for item in checked:
        for base in item.profile.bases if item.profile else ():
            children[base.resolve()].append(item.path)
    for item in checked:
        item.base_of = children.get(item.path.resolve())
    return checked


def _base_only(item: Checked) -> bool:
    """A base that fails only for a top-level field it leaves to the profiles extending it."""
    error = item.error
    return (
        error is not None
        and bool(item.base_of)
        and error.path.resolve() == item.path.resolve()
        and error.problem.startswith("missing")
        and error.field is not None
        and "." not in error.field
    )


def print_checked(item: Checked, out: TextIO) -> None:
    uses = f" (base of {_names(item.base_of)})" if item.base_of else ""
    if item.profile is not None:
        profile = item.profile
        print(
            f"{item.path}: ok: {profile.name}, {profile.phone_home_url}, "
            f"token type {profile.token_type}{uses}",
            file=out,
        )
        for base in profile.bases:
            print(f"    extends {base}", file=out)
        for field in profile.inherited:
            where = f"{field.path}:{field.line}" if field.line else str(field.path)
            print(f"    {field.field} from {where}", file=out)
        for note in _notes(profile):
            print(f"    warning: {note}", file=out)
    elif _base_only(item):
        assert item.error is not None
        print(
            f"{item.path}: base of {_names(item.base_of)}; not a profile by itself: "
            f"{item.error.field} {item.error.problem}",
            file=out,
        )
    else:
        print(f"{item.path}: error: {item.error}", file=out)


def _names(paths: list[Path] | None) -> str:
    return ", ".join(str(path) for path in paths or ())


def _notes(profile: Profile) -> list[str]:
    notes = []
    token_type = dict(profile.service_info).get("TokenType")
    if token_type is not None and token_type != profile.token_type:
        notes.append(
            f"service_info.TokenType is {token_type} but token_type is {profile.token_type}: "
            f"ESC asks TPS for {token_type}, whose op.format settings the export does not give"
        )
    return notes


def cross_check(profiles: list[Profile]) -> list[str]:
    """Problems between profiles: one name twice (an error), one URL served two ways."""
    problems = []
    by_name: dict[str, list[Profile]] = defaultdict(list)
    by_url: dict[str, list[Profile]] = defaultdict(list)
    for profile in profiles:
        by_name[profile.name].append(profile)
        by_url[profile.phone_home_url].append(profile)

    for name, same in by_name.items():
        if len(same) > 1:
            where = ", ".join(str(p.path) for p in same)
            problems.append(f"error: the name {name} is used by {where}; reports need one each")
    for url, same in by_url.items():
        answers = {(p.issuer_name, p.service_info) for p in same}
        if len(answers) > 1:
            where = ", ".join(str(p.path) for p in same)
            problems.append(
                f"warning: {where} share the Phone Home URL {url} but expect different "
                "ServiceInfo: one server cannot answer both"
            )
    return problems
