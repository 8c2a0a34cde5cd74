"""``provision burn``: burn and verify tokens in readers or simulated ones, with progress,
a ledger and a summary.

Three ways to run: once over the tokens present in the readers (the default), ``--watch``
(a worker per reader burns every token inserted until Ctrl-C or ``--count``), and
``--interactive`` (one reader, a few tokens, a question before each). ``--simulated N`` feeds
N fresh blank virtual tokens through the same workers.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from .. import __version__
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TOKENS_FAILED,
    CliError,
    LazyChoices,
    Subparsers,
    prefs_dialects,
    refuse_overwriting,
)

if TYPE_CHECKING:  # imported where used, so that building the parser stays quick
    from ..batch import Batch, Counts, Limits, Summary
    from ..burn import BurnPlan, TokenResult
    from ..ledger import Ledger, RunContext
    from ..profile import CuidRange, Overwrite, Profile
    from ..report import JsonlReport
    from ..simulated import Redirect
    from ..trace import ApduTrace
    from ..transport import Reader, Transport
    from ..verify import VerifyConfig

logger = logging.getLogger(__name__)

INTERACTIVE_MAX = 20  # IT mode is for a handful of tokens; a tray belongs in --watch
REFRESH = 0.1  # seconds between redraws of a reader's status line
SIMULATED_READERS = 4


def register(commands: Subparsers) -> None:
    burn = commands.add_parser("burn", help="burn and verify Phone Home data on tokens")
    burn.add_argument("profile", type=Path, help="issuer profile (YAML)")
    tokens = burn.add_argument_group("tokens")
    tokens.add_argument(
        "--reader",
        action="append",
        metavar="PATTERN",
        help="PC/SC readers whose names match this glob (repeatable)",
    )
    tokens.add_argument(
        "--simulated", type=int, metavar="N", help="burn N fresh blank simulated tokens"
    )
    mode = tokens.add_mutually_exclusive_group()
    mode.add_argument(
        "--watch",
        action="store_true",
        help="keep burning every token inserted, one worker per reader, until Ctrl-C",
    )
    mode.add_argument(
        "--interactive",
        action="store_true",
        help=f"IT mode: one reader, up to {INTERACTIVE_MAX} tokens, asking before each",
    )
    tokens.add_argument("--count", type=int, metavar="N", help="stop once N tokens are verified")
    _policy_options(burn)
    record = burn.add_argument_group("records")
    record.add_argument(
        "--ledger",
        metavar="FILE|URL",
        help="record every attempt in this SQLite file or postgresql:// database",
    )
    record.add_argument("--station", help="this station's name in the ledger (default: host)")
    record.add_argument("--operator", help="who runs the batch (default: login name)")
    record.add_argument("--report", type=Path, help="JSONL report file (default: timestamped)")
    record.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    record.add_argument(
        "--trace",
        type=Path,
        metavar="FILE",
        help="append the APDU exchange, as the tool sent and received it, to FILE for support",
    )
    burn.add_argument(
        "--esc-prefs",
        type=Path,
        metavar="FILE",
        help="ESC defaults file whose esc.global.phone.home.url the client flow may use",
    )
    burn.add_argument(
        "--prefs-dialect",
        choices=LazyChoices(prefs_dialects),
        metavar="DIALECT",
        help="pref names in the report: rhcs (the RHCS guide's, default) or esc11 (ESC 1.1's)",
    )
    burn.add_argument("--no-progress", action="store_true", help="no progress display")
    burn.set_defaults(handler=cmd_burn)


def _overwrites() -> list[str]:
    from ..profile import Overwrite

    return [o.value for o in Overwrite]


def _policy_options(burn: argparse.ArgumentParser) -> None:
    policy = burn.add_argument_group("policy (overrides the profile's)")
    policy.add_argument(
        "--overwrite",
        choices=LazyChoices(_overwrites),
        help="what to do with tokens holding other issuer info",
    )
    policy.add_argument(
        "--cuid-range",
        action="append",
        metavar="RANGE",
        help="allow only CUIDs in LOW..HIGH, PREFIX* or one CUID (repeatable)",
    )
    policy.add_argument(
        "--halt-after-failures", type=int, metavar="N", help="halt after N failures in a row"
    )
    policy.add_argument(
        "--halt-after-key-mismatches",
        type=int,
        metavar="N",
        help="halt after N card-cryptogram mismatches in a row",
    )
    policy.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        help="read the tokens and say what would be done; write nothing",
    )


@dataclass(frozen=True, slots=True)
class _Run:
    """What the options resolved to, before any token is touched."""

    profile: Profile
    overwrite: Overwrite | None
    cuid_ranges: tuple[CuidRange, ...] | None
    dry_run: bool | None
    limits: Limits
    report_path: Path
    out: TextIO

    @property
    def overrides(self) -> str | None:
        """The policy options given, as the ledger records them."""
        parts = []
        if self.overwrite is not None:
            parts.append(f"overwrite={self.overwrite.value}")
        if self.cuid_ranges is not None:
            parts.append(f"cuid_ranges={','.join(map(str, self.cuid_ranges))}")
        if self.dry_run is not None:
            parts.append(f"dry_run={str(self.dry_run).lower()}")
        return "; ".join(parts) or None

    def plan(self, verify: VerifyConfig) -> BurnPlan:
        from ..burn import BurnPlan

        return BurnPlan.from_profile(
            self.profile,
            verify=verify,
            overwrite=self.overwrite,
            cuid_ranges=self.cuid_ranges,
            dry_run=self.dry_run,
        )


def cmd_burn(args: argparse.Namespace) -> int:
    from ..ledger import open_ledger

    _check_options(args)
    run = _resolve(args)
    profile, out = run.profile, run.out
    _announce_profile(profile, run, out)

    ledger = open_ledger(args.ledger) if args.ledger else None
    try:
        if ledger is not None:
            print(f"Ledger: {ledger.name}", file=out)
        elif args.watch:
            print("No --ledger: results go to the report only; a re-run cannot resume.", file=out)
        summary = _burn(args, run, ledger)
    finally:
        if ledger is not None:
            ledger.close()

    _print_summary(summary, run.report_path, ledger, out)
    if args.json:
        extra = {"report": str(run.report_path), "ledger": ledger.name if ledger else None}
        print(json.dumps({**summary.as_dict(), **extra}))
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_TOKENS_FAILED


def _check_options(args: argparse.Namespace) -> None:
    if (args.simulated is None) == (args.reader is None):
        raise CliError("name the tokens: --reader PATTERN for readers, or --simulated N")
    if args.simulated is not None:
        if args.simulated < 1:
            raise CliError("--simulated takes a number of tokens, at least 1")
        if args.watch:
            raise CliError("--watch is for --reader: a simulated run feeds its own tokens")
        if args.count is not None:
            raise CliError("--count is for --reader: --simulated N already says how many")
    if args.count is not None and args.count < 1:
        raise CliError("--count takes a number of tokens, at least 1")
    if args.interactive:
        wanted = args.count or args.simulated or 0
        if wanted > INTERACTIVE_MAX:
            raise CliError(
                f"--interactive burns at most {INTERACTIVE_MAX} tokens; use --watch for more"
            )
        if not sys.stdin.isatty():
            raise CliError("--interactive asks questions: run it in a terminal")
    for name in ("halt_after_failures", "halt_after_key_mismatches"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} takes a number, at least 1")


def _resolve(args: argparse.Namespace) -> _Run:
    from ..batch import Limits
    from ..profile import Overwrite, load_profile
    from ..report import default_report_name

    profile = load_profile(args.profile)
    policy = profile.policy
    ranges = _cuid_ranges(args.cuid_range)
    overwrite = Overwrite(args.overwrite) if args.overwrite else None
    if overwrite is Overwrite.REPLACE_LISTED and not policy.replaces:
        raise CliError(
            f"--overwrite replace-listed needs the values to replace in the profile's "
            f"policy.replaces; {profile.path} lists none"
        )

    limits = Limits(
        halt_after_key_mismatches=args.halt_after_key_mismatches
        or policy.halt_after_key_mismatches,
        halt_after_failures=args.halt_after_failures or policy.halt_after_failures,
        count=args.count,
    )
    report_path = args.report or default_report_name()
    _refuse_overwriting_inputs(report_path, args, profile)
    if args.simulated is not None:
        from ..simulated import check_simulatable

        check_simulatable(profile)
    return _Run(
        profile=profile,
        overwrite=overwrite,
        cuid_ranges=ranges,
        dry_run=args.dry_run,
        limits=limits,
        report_path=report_path,
        out=sys.stderr if args.json else sys.stdout,
    )


def _is_database_url(target: str | None) -> bool:
    return target is not None and "://" in target


def _refuse_overwriting_inputs(report: Path, args: argparse.Namespace, profile: Profile) -> None:
    # The report is appended to: pointed at the profile or another file of the run by
    # mistake, it would quietly corrupt that file.
    inputs: dict[str, Path | str | None] = {"the profile": profile.path}
    inputs.update({f"the profile's base {base}": base for base in profile.bases})
    inputs.update(
        {
            "--esc-prefs": args.esc_prefs,
            "--log-file": args.log_file,
            "--trace": args.trace,
            "--ledger": None if _is_database_url(args.ledger) else args.ledger,
        }
    )
    refuse_overwriting("--report", report, inputs)


def _cuid_ranges(texts: list[str] | None) -> tuple[CuidRange, ...] | None:
    if texts is None:
        return None
    from ..profile import parse_cuid_range

    try:
        return tuple(parse_cuid_range(text) for text in texts)
    except ValueError as exc:
        raise CliError(f"--cuid-range: {exc}") from None


# -- running --------------------------------------------------------------------------------


def _burn(args: argparse.Namespace, run: _Run, ledger: Ledger | None) -> Summary:
    from ..phonehome.esc_prefs import GLOBAL_PHONE_HOME_URL, IGNORE_KEY_ISSUER_INFO, read_prefs
    from ..phonehome.prefs import PrefsDialect
    from ..report import JsonlReport
    from ..simulated import phone_home_server
    from ..trace import open_trace
    from ..verify import VerifyConfig

    esc = read_prefs(args.esc_prefs) if args.esc_prefs else {}
    settings = VerifyConfig(
        global_url=esc.get(GLOBAL_PHONE_HOME_URL) or None,
        ignore_token=esc.get(IGNORE_KEY_ISSUER_INFO) == "yes",
        dialect=PrefsDialect(args.prefs_dialect or PrefsDialect.RHCS),
    )
    context = {
        "profile": run.profile.name,
        "profile_hash": run.profile.content_hash,
        "tool_version": __version__,
    }
    with JsonlReport(run.report_path, context) as report, open_trace(args.trace) as trace:
        if args.simulated is not None:
            with phone_home_server(run.profile) as redirect:
                _announce_simulated(args.simulated, redirect, run.out)
                verify = replace(
                    settings,
                    connect_to=redirect.connect_to,
                    ca_file=redirect.ca_file or settings.ca_file,
                )
                width = 1 if args.interactive else SIMULATED_READERS
                tray = _SimulatedTray(run.profile, args.simulated, width)
                slots = _traced(trace, tray.readers())
                return _drive(args, run, ledger, report, verify, slots, tray)

        verify = settings
        readers = _open_readers(args.reader)
        try:
            return _drive(args, run, ledger, report, verify, _traced(trace, readers), None)
        finally:
            for reader in readers:
                _close_reader(reader)


def _traced(trace: ApduTrace | None, readers: list[Reader]) -> list[Reader]:
    return readers if trace is None else trace.readers(readers)


def _drive(
    args: argparse.Namespace,
    run: _Run,
    ledger: Ledger | None,
    report: JsonlReport,
    verify: VerifyConfig,
    readers: Sequence[Reader],
    tray: _SimulatedTray | None,
) -> Summary:
    from ..batch import Batch

    plan = run.plan(verify)
    if plan.dry_run:
        print(
            "Dry run: tokens are read, nothing is written to them or to the ledger.", file=run.out
        )
    journals = None
    if ledger is not None:
        journals = partial(ledger.journal, _run_context(args, run, ledger))
    total = args.simulated or run.limits.count
    interactive = bool(args.interactive)
    display = _Display(
        report,
        [reader.name for reader in readers],
        total=total,
        out=run.out,
        progress=not (args.no_progress or interactive),
        quiet=interactive,
    )
    batch = Batch(plan, run.limits, journals=journals, observer=display)
    if tray is not None:
        tray.batch = batch

    with _released(plan.keys), display, _Interrupts(batch, run.out):
        if interactive:
            _check_one_reader(readers)
            limit = run.limits.count or args.simulated or INTERACTIVE_MAX
            _interactive(batch, readers[0], run, limit)
            return batch.summary()
        watch = bool(args.watch) or tray is not None
        _announce_readers(readers, watch=watch, simulated=tray is not None, out=run.out)
        return batch.run(readers, watch=watch)


@contextmanager
def _released(keys: object) -> Iterator[None]:
    """The key provider holds HSM sessions and master keys: release them with the run."""
    from ..keysource import ProfileCardKeys

    try:
        yield
    finally:
        if isinstance(keys, ProfileCardKeys):
            keys.close()


def _run_context(args: argparse.Namespace, run: _Run, ledger: Ledger) -> RunContext:
    from ..ledger import RunContext

    return RunContext(
        profile=run.profile.name,
        profile_hash=run.profile.content_hash,
        url=run.profile.phone_home_url,
        station=args.station or socket.gethostname(),
        operator=args.operator or _login_name(),
        tool_version=__version__,
        overrides=run.overrides,
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _open_readers(patterns: Sequence[str]) -> list[Reader]:
    # Imported here: a simulated run needs no PC/SC stack and no pyscard.
    from .. import pcsc

    return pcsc.open_readers(patterns)


def _close_reader(reader: Reader) -> None:
    close = getattr(reader, "close", None)
    if callable(close):
        close()


def _check_one_reader(readers: Sequence[Reader]) -> None:
    if len(readers) != 1:
        names = ", ".join(repr(reader.name) for reader in readers)
        raise CliError(f"--interactive works with one reader; the patterns match {names}")


class _Interrupts:
    """Ctrl-C and SIGTERM ask the batch to drain instead of breaking off a write: nothing
    is ever interrupted, every wait (for a card, a removal, an answer) looks at the batch."""

    def __init__(self, batch: Batch, out: TextIO) -> None:
        self._batch = batch
        self._out = out
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self._batch.stopping
        self._batch.stop(interrupted=True)
        if first:
            from tqdm import tqdm

            tqdm.write(
                "Stopping: the tokens in the readers are finished and recorded first.",
                file=self._out,
            )


# -- simulated tokens -----------------------------------------------------------------------


class _SimulatedTray:
    """Fresh blank virtual tokens, handed to a few simulated readers as a tray feeds a line."""

    def __init__(self, profile: Profile, count: int, slots: int) -> None:
        from ..simulated import blank_tokens

        self._tokens: Iterator[Transport] = blank_tokens(profile, count)
        self._slots = min(count, slots)
        self._lock = threading.Lock()
        self.batch: Batch | None = None

    def readers(self) -> list[Reader]:
        return [_TraySlot(self, f"simulated slot {n + 1}") for n in range(self._slots)]

    def next_token(self) -> Transport | None:
        with self._lock:
            transport = next(self._tokens, None)
        if transport is None and self.batch is not None:
            self.batch.end()  # the tray is empty: the workers finish what they hold
        return transport


class _TraySlot:
    """A reader slot of the tray: a token is there as soon as it is asked for."""

    def __init__(self, tray: _SimulatedTray, name: str) -> None:
        self._tray = tray
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def wait_for_card(self, timeout: float) -> Transport | None:
        return self._tray.next_token()

    def wait_for_removal(self, timeout: float) -> bool:
        return True


# -- interactive (IT) mode ------------------------------------------------------------------


def _interactive(batch: Batch, reader: Reader, run: _Run, limit: int) -> None:
    out = run.out
    print(
        f"IT mode with {reader.name}: up to {limit} tokens, one at a time. "
        "Ctrl-C stops after the token in hand.",
        file=out,
    )
    worker = batch.worker(reader)
    try:
        for number in range(1, limit + 1):
            print(f"\nToken {number}: insert a token into {reader.name}.", file=out, flush=True)
            result = worker.next_token(wait=True)
            if result is None:
                return
            print(_plain_result(result, run.profile), file=out)
            if number == limit:
                print(f"That is {limit} tokens, the most for this run.", file=out)
                return
            print("Remove the token.", file=out, flush=True)
            if not worker.await_removal() or not _ask("Burn another token?", batch, out):
                return
    finally:
        worker.close()


def _ask(question: str, batch: Batch, out: TextIO) -> bool:
    """A yes-or-no question on the terminal; Enter is yes, end of input or Ctrl-C no."""
    print(f"{question} [Y/n] ", end="", file=out, flush=True)
    # The terminal hands over a whole line at a time. Waiting in select rather than in
    # input() lets a Ctrl-C that lands at any moment end the wait at the next look.
    fd = sys.stdin.fileno()
    while not batch.stopping:
        ready, _, _ = select.select([fd], [], [], batch.poll)
        if ready:
            line = os.read(fd, 1024).decode("utf-8", "replace")
            if not line:
                break  # Ctrl-D
            return line.strip().lower() in ("", "y", "yes")
    print(file=out)
    return False


def _plain_result(result: TokenResult, profile: Profile) -> str:
    from ..burn import Outcome

    token = f"Token {result.token_id}" if result.token_id else "The token"
    took = result.timings_ms.get("total", 0.0) / 1000
    if result.outcome is Outcome.VERIFIED:
        return (
            f"{token} is done ({took:.2f} s): it now holds the Phone Home URL "
            f"{profile.phone_home_url}, and ESC will find {profile.issuer_name} through it."
        )
    if result.outcome is Outcome.ALREADY_BURNED:
        return (
            f"{token} already held this Phone Home URL and checks out as ESC would see it; "
            "nothing was written."
        )
    if result.outcome is Outcome.PLANNED:
        return f"{token} (dry run, nothing written): {result.reason}."
    if result.outcome is Outcome.FAILED:
        return f"{token} FAILED at {result.step.value}: {result.reason}."
    return f"{token} was not burned: {result.reason}."


# -- output ---------------------------------------------------------------------------------


class _Display:
    """Progress for a terminal (an overall bar, one status line per reader), the report, and
    a line for every token that did not end verified. Called from the worker threads."""

    def __init__(
        self,
        report: JsonlReport,
        readers: list[str],
        *,
        total: int | None,
        out: TextIO,
        progress: bool,
        quiet: bool,
    ) -> None:
        from tqdm import tqdm

        from ..batch import Activity

        self._report = report
        # The activities that ask something of the operator: drawn at once.
        self._asks = frozenset(
            {Activity.WAITING, Activity.REMOVE, Activity.HELD, Activity.STOPPED}
        )
        self._empty = Activity.EMPTY
        self._out = out
        self._quiet = quiet
        self._lock = threading.Lock()
        show = progress and out.isatty()
        self._width = max((len(name) for name in readers), default=0)
        self._drawn: dict[str, float] = {}
        self._bar = tqdm(total=total, unit="token", file=out, disable=not show, leave=False)
        # No status lines off a terminal: each step would format a line nobody sees.
        self._lines = {
            name: tqdm(
                file=out, position=n + 1, bar_format="{desc}", disable=not show, leave=False
            )
            for n, name in enumerate(readers)
            if show
        }

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for line in self._lines.values():
                line.close()
            self._bar.close()

    def status(self, reader: str, token_id: str | None, activity: str) -> None:
        with self._lock:
            line = self._lines.get(reader)
            if line is not None:
                text = f"{reader:<{self._width}}  {token_id or '':<20}  {activity}"
                line.set_description_str(text, refresh=False)
                # Steps of fast cards would flood the terminal: a line is redrawn at most
                # every REFRESH seconds, and whenever the operator has something to do.
                now = time.monotonic()
                if activity in self._asks or now - self._drawn.get(reader, 0.0) >= REFRESH:
                    self._drawn[reader] = now
                    line.refresh()
            if activity == self._empty and not self._quiet:
                self._bar.write(f"{reader}: no token", file=self._out)

    def result(self, result: TokenResult) -> None:
        with self._lock:
            self._report.write(result.record())
            self._bar.update(1)
            if not self._quiet and not result.ok:
                self._bar.write(_result_line(result), file=self._out)


def _announce_profile(profile: Profile, run: _Run, out: TextIO) -> None:
    print(
        f"Profile {profile.name} ({profile.path}), Phone Home URL {profile.phone_home_url}",
        file=out,
    )
    for key_set in profile.key_sets:
        if key_set.test_keys:
            print(
                f"Using test keys (key set {key_set.kvn:02X}, {key_set.check_value}, marked "
                "test_keys in the profile): not for production tokens.",
                file=out,
            )
    if run.overrides:
        print(f"Policy overrides: {run.overrides}", file=out)


def _announce_simulated(count: int, redirect: Redirect, out: TextIO) -> None:
    print(
        f"Simulated run: {count} blank virtual token{'s' if count != 1 else ''}. "
        "Phone Home fetches for "
        f"{redirect.host}:{redirect.port} go to a local server at "
        f"{redirect.local_host}:{redirect.local_port}; the tokens keep the real URL.",
        file=out,
    )


def _announce_readers(
    readers: Sequence[Reader], *, watch: bool, simulated: bool, out: TextIO
) -> None:
    if simulated:
        return
    names = ", ".join(reader.name for reader in readers)
    if watch:
        print(
            f"Watching {names}: insert tokens; each is burned, verified and then waits for "
            "its removal. Ctrl-C stops after the tokens in hand.",
            file=out,
        )
    else:
        print(f"Burning the tokens present in {names}, once.", file=out)


def _result_line(result: TokenResult) -> str:
    token = result.token_id or "(unidentified)"
    return (
        f"{result.reader} {token}: {result.outcome.value} at {result.step.value}: {result.reason}"
    )


_COLUMNS = (
    ("verified", "verified"),
    ("already", "already_burned"),
    ("skipped", "skipped"),
    ("planned", "planned"),
    ("refused", "refused"),
    ("failed", "failed"),
)


def summary_table(summary: Summary) -> list[str]:
    """The per-reader table: one row a reader, then the totals."""
    rows: list[tuple[str, Counts]] = sorted(summary.readers.items())
    rows.append(("total", summary))
    width = max(len(name) for name, _ in rows)
    head = f"{'reader':<{width}}" + "".join(f"  {title:>8}" for title, _ in _COLUMNS)
    lines = [head]
    for name, counts in rows:
        cells = "".join(f"  {getattr(counts, field):>8}" for _, field in _COLUMNS)
        lines.append(f"{name:<{width}}{cells}")
    return lines


def _print_summary(
    summary: Summary, report_path: Path, ledger: Ledger | None, out: TextIO
) -> None:
    if summary.readers:
        print("\n" + "\n".join(summary_table(summary)), file=out)
    extra = "".join(
        f", {count} {name}"
        for name, count in (("skipped", summary.skipped), ("planned", summary.planned))
        if count
    )
    print(
        f"{summary.verified} verified, {summary.already_burned} already burned, "
        f"{summary.refused} refused, {summary.failed} failed{extra} in {summary.elapsed:.2f} s "
        f"({summary.tokens_per_second:.1f} tokens/s)",
        file=out,
    )
    if summary.halted:
        print(f"Batch {summary.halted}", file=out)
    if summary.interrupted:
        print("Interrupted: every token in hand was finished and recorded.", file=out)
    print(f"Report: {report_path}", file=out)
    if ledger is not None:
        print(f"Ledger: {ledger.name}", file=out)
