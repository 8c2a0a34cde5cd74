"""``provision burn``: burn and verify a batch of tokens, with progress and a summary."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from .. import __version__
from ..batch import Summary, run_batch
from ..burn import BurnPlan, Outcome, TokenResult
from ..phonehome.esc_prefs import read_global_phone_home_url
from ..profile import Overwrite, Profile, load_profile
from ..report import JsonlReport, default_report_name
from ..simulated import blank_tokens, phone_home_server
from ..transport import Transport
from ..verify import VerifyConfig
from ._common import EXIT_OK, EXIT_TOKENS_FAILED, CliError, Subparsers

logger = logging.getLogger(__name__)


def register(commands: Subparsers) -> None:
    burn = commands.add_parser("burn", help="burn and verify Phone Home data on tokens")
    burn.add_argument("profile", type=Path, help="issuer profile (YAML)")
    # XXX: only simulated tokens for now; PC/SC readers need the pyscard transport.
    burn.add_argument(
        "--simulated",
        type=int,
        metavar="N",
        required=True,
        help="burn N fresh blank simulated tokens",
    )
    burn.add_argument("--report", type=Path, help="JSONL report file (default: timestamped)")
    burn.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    burn.add_argument(
        "--overwrite",
        choices=[o.value for o in Overwrite],
        help="what to do with tokens holding other issuer info (default: the profile's policy)",
    )
    burn.add_argument(
        "--esc-prefs",
        type=Path,
        metavar="FILE",
        help="ESC defaults file whose esc.global.phone.home.url the client flow may use",
    )
    burn.add_argument("--no-progress", action="store_true", help="no progress bar")
    burn.set_defaults(handler=cmd_burn)


def cmd_burn(args: argparse.Namespace) -> int:
    if args.simulated < 1:
        raise CliError("--simulated takes a number of tokens, at least 1")
    profile = load_profile(args.profile)
    overwrite = Overwrite(args.overwrite) if args.overwrite else None
    global_url = read_global_phone_home_url(args.esc_prefs) if args.esc_prefs else None
    report_path = args.report or default_report_name()
    out = sys.stderr if args.json else sys.stdout

    _announce_profile(profile, out)
    with phone_home_server(profile) as redirect:
        print(
            f"Simulated run: {args.simulated} blank virtual tokens. Phone Home fetches for "
            f"{redirect.host}:{redirect.port} go to a local server at "
            f"{redirect.local_host}:{redirect.local_port}; the tokens keep the real URL.",
            file=out,
        )
        verify = VerifyConfig(connect_to=redirect.connect_to, global_url=global_url)
        plan = BurnPlan.from_profile(profile, verify=verify, overwrite=overwrite)
        context = {
            "profile": profile.name,
            "profile_hash": profile.content_hash,
            "tool_version": __version__,
        }
        with JsonlReport(report_path, context) as report:
            summary = _run_with_progress(
                blank_tokens(profile, args.simulated),
                plan,
                profile,
                report,
                total=args.simulated,
                out=out,
                progress=not args.no_progress,
            )

    _print_summary(summary, report_path, out)
    if args.json:
        print(json.dumps(summary.as_dict()))
    return EXIT_OK if summary.ok else EXIT_TOKENS_FAILED


def _run_with_progress(
    transports: Iterable[Transport],
    plan: BurnPlan,
    profile: Profile,
    report: JsonlReport,
    *,
    total: int,
    out: TextIO,
    progress: bool,
) -> Summary:
    with tqdm(
        total=total, unit="token", file=out, disable=not (progress and out.isatty()), leave=False
    ) as bar:

        def on_result(result: TokenResult) -> None:
            report.write(result.record())
            bar.update(1)
            if result.outcome in (Outcome.FAILED, Outcome.REFUSED):
                tqdm.write(_result_line(result), file=out)

        return run_batch(
            transports,
            plan,
            halt_after_key_mismatches=profile.policy.halt_after_key_mismatches,
            on_result=on_result,
        )


def _announce_profile(profile: Profile, out: TextIO) -> None:
    print(
        f"Profile {profile.name} ({profile.path}), Phone Home URL {profile.phone_home_url}",
        file=out,
    )
    for key_set in profile.key_sets:
        if key_set.test_keys:
            print(
                f"Using well-known GlobalPlatform test keys (key set {key_set.kvn:02X}, "
                f"ENC KCV {key_set.keys.enc.kcv}): not for production tokens.",
                file=out,
            )


def _result_line(result: TokenResult) -> str:
    token = result.token_id or "(unidentified)"
    return (
        f"{result.reader} {token}: {result.outcome.value} at {result.step.value}: {result.reason}"
    )


def _print_summary(summary: Summary, report_path: Path, out: TextIO) -> None:
    print(
        f"{summary.verified} verified, {summary.already_burned} already burned, "
        f"{summary.refused} refused, {summary.failed} failed in {summary.elapsed:.2f} s "
        f"({summary.tokens_per_second:.1f} tokens/s)",
        file=out,
    )
    if summary.halted:
        print(f"Batch {summary.halted}", file=out)
    print(f"Report: {report_path}", file=out)
