"""The ``provision`` command line.

This is the only module that prints, configures logging, or turns errors into messages and
exit codes. Everything it calls raises :class:`ProvisionError` subclasses with messages
meant for the operator.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from . import __version__
from .batch import Summary, run_batch
from .burn import BurnPlan, Outcome, TokenResult
from .errors import ConfigError, ProvisionError
from .log import TRAFFIC
from .phonehome.esc_prefs import read_global_phone_home_url
from .profile import Overwrite, Profile, load_profile
from .report import JsonlReport, default_report_name
from .simulated import blank_tokens, phone_home_server
from .transport import Transport
from .verify import VerifyConfig

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TOKENS_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


class CliError(Exception):
    """A message for the operator and the exit status that goes with it."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision",
        description="Burn CoolKey Phone Home data onto tokens and verify it as ESC would.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output: -v outcomes, -vv steps, -vvv every APDU",
    )
    parser.add_argument("--log-file", type=Path, help="also write the log to this file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _configure_logging(args.verbose, args.log_file)
        status: int = args.handler(args)
        return status
    except CliError as exc:
        _error(str(exc))
        return exc.status
    except ProvisionError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:
        logger.debug("internal error", exc_info=True)
        _error(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in provision: "
            "run again with --log-file FILE -vv and report the file"
        )
        return EXIT_INTERNAL


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


def _configure_logging(verbose: int, log_file: Path | None) -> None:
    level = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}.get(verbose, TRAFFIC)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        try:
            file_handler = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the log file {log_file}: {exc.strerror}") from None
        file_handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        handlers.append(file_handler)
    logging.basicConfig(
        level=level, handlers=handlers, format="%(levelname)s: %(message)s", force=True
    )
    if level <= TRAFFIC:
        logger.warning("APDU tracing is on: every command and response is logged")


def _error(message: str) -> None:
    print(f"provision: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
