"""Measure the tool against the card's own limit: six figures, as a table and as JSON.

    .venv/bin/python -m tests.bench.benchmark [--quick] [--json FILE]

1. APDUs per token by command, burn and verification apart, for a T=1 and a T=0 card: the
   burn and its read-back after reset counted from an APDU trace at the wire (in process),
   and the full dialogue ESC's own libraries send (esc-phone-home.md §8) counted from the
   simulator's wire log through pcscd.
2. The default simulated run (``provision burn PROFILE --simulated N``) in process on one
   core: tokens per second (the fastest of five runs: the machine may be doing other work)
   and CPU time per token, split into the simulated cards, the local Phone Home server
   (which stands in for the TPS) and the tool itself; and the same run with a ledger.
3. Through pcscd with the simulator's latency model at 20 ms per APDU: the CPU time of the
   ``provision`` process per token over the time each token is in use.
4. Tokens per second with 1, 4 and 16 virtual readers at that latency, and the ratio to
   16 × one reader.
5. The resident size of one process before and after 10 000 in-process tokens.
6. The wall time of ``provision --help``.

Figures 3 and 4 (and the ESC rows of 1) need pcscd, vpcd and pyscard, and root to start a
pcscd of their own with the repository's virtual readers; with another pcscd running they
are skipped, and the output says why. The simulated cards of figures 3 and 4 run in a child
process, so the ``provision`` process's CPU time is the tool's alone. Nothing here asserts a
figure: each one is printed next to its target, with the conditions it was measured under.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import io
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "profiles" / "example-corp.yaml"
APDU_MS = 20.0  # the latency model of figures 3 and 4: per APDU, no extra per NV write
SCALING_READERS = (1, 4, 16)
PHONE_HOME_PATH = "/cgi-bin/home/index.cgi"  # the Example Corp URL's path
SETTLE = 1.0  # seconds for pcscd to poll every emptied reader before its next card

TARGETS = {
    "burn_apdus": 7,
    "readback_apdus": 2,
    "esc_apdus": 6,
    "tokens_per_second": 300.0,
    "tool_share": 0.05,
    "scaling_ratio": 0.9,
    "rss_growth_mb": 10.0,
    "help_ms": 300.0,
}

# Why each command is there; the minimum for a burn is the write and the secure channel
# it needs (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE, SET ISSUER INFO).
WHY = {
    "SELECT card manager": (
        "explicit card-manager select (profile card_manager_aid): the token may come with "
        "the applet selected; without it, 6"
    ),
    "GET DATA CPLC": "the CUID: token id for the report, ledger and cuid_ranges",
    "SELECT CoolKey": "the issuer info is the applet's; INITIALIZE UPDATE goes to it",
    "GET ISSUER INFO": "what the token holds: never write over another issuer's URL",
    "INITIALIZE UPDATE": "secure channel (GPC E.5.1), needed for the write",
    "EXTERNAL AUTHENTICATE": "secure channel (GPC E.5.2), needed for the write",
    "SET ISSUER INFO": "the write",
    "GET RESPONSE": "T=0: the answer of a case-4 command (ISO/IEC 7816-3 §12.2.5)",
    "GET LIFE CYCLE": "coolkey: applet version, i.e. a CoolKey token",
    "SELECT empty AID": "coolkey: the card manager, for the CPLC",
}
READBACK_WHY = "read back after a reset, as ESC reads it (the value survives power-off)"
ESC_WHY = {
    "SELECT CoolKey": "coolkey and libckyapplet each select the applet",
    "GET ISSUER INFO": "libckyapplet: the Phone Home URL",
}
AIDS = {
    "A000000003000000": "card manager",
    "627601FF000000": "CoolKey",
    "": "empty AID",
}
COMMANDS = {
    (0x80, 0xCA): "GET DATA",
    (0x80, 0x50): "INITIALIZE UPDATE",
    (0x84, 0x82): "EXTERNAL AUTHENTICATE",
    (0x84, 0xF4): "SET ISSUER INFO",
    (0xB0, 0xF6): "GET ISSUER INFO",
    (0xB0, 0xF2): "GET LIFE CYCLE",
    (0xB0, 0x3C): "GET STATUS",
    (0x00, 0xC0): "GET RESPONSE",
}


def command_name(apdu: bytes) -> str:
    """What a command APDU is, by its header (and the AID of a SELECT)."""
    cla, ins = apdu[0], apdu[1]
    if (cla, ins) == (0x00, 0xA4):
        length = apdu[4] if len(apdu) > 4 else 0
        aid = apdu[5 : 5 + length].hex().upper()
        return f"SELECT {AIDS.get(aid, aid)}"
    name = COMMANDS.get((cla, ins), f"{cla:02X} {ins:02X}")
    if name == "GET DATA" and apdu[2:4] == b"\x9f\x7f":
        return "GET DATA CPLC"
    return name


@dataclass
class Dialogue:
    """The commands of one phase, in order."""

    commands: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.commands)

    def by_command(self) -> dict[str, int]:
        return dict(Counter(self.commands))


@dataclass
class Figure:
    """One figure: rows for the table, values for the JSON, and whether its target was met."""

    number: int
    title: str
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "skipped": self.skipped, **self.values, "notes": self.notes}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- figure 1: APDUs per token ------------------------------------------------------------


def _trace_dialogues(path: Path, reader: str) -> tuple[Dialogue, Dialogue]:
    """Burn and verification from an APDU trace: verification begins at the card reset."""
    burn, verify = Dialogue(), Dialogue()
    current = burn
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[1] != reader:
            continue
        if parts[2] == "#" and parts[3].startswith("card reset"):
            current = verify
        elif parts[2] == ">":
            current.commands.append(command_name(bytes.fromhex(parts[3])))
    return burn, verify


def apdus_in_process(t0: bool) -> tuple[Dialogue, Dialogue]:
    """Burn and verify one blank token in process, the trace taken where the wire would be
    (below the host's T=0 layer, so GET RESPONSE shows)."""
    from provision.burn import Outcome, burn_token
    from provision.t0 import T0Transport
    from provision.trace import ApduTrace
    from provision.transport import InProcessTransport, Transport
    from simulator.cli import make_token
    from simulator.t0 import T0Card
    from tests.pcscd import example_burn_plan

    reader = "T=0" if t0 else "T=1"
    token = make_token()
    with tempfile.TemporaryDirectory() as tmp, example_burn_plan() as plan:
        path = Path(tmp) / "trace.txt"
        with ApduTrace(path) as trace:
            wire = trace.transport(InProcessTransport(T0Card(token) if t0 else token, reader))
            transport: Transport = T0Transport(wire) if t0 else wire
            result = burn_token(transport, plan)
            transport.close()
        if result.outcome is not Outcome.VERIFIED:
            raise RuntimeError(f"the {reader} burn failed: {result.reason}")
        return _trace_dialogues(path, reader)


def figure_apdus(esc: dict[str, Dialogue] | None, esc_skipped: str | None) -> Figure:
    figure = Figure(1, "APDUs per token, by command")
    figure.header = ["card", "phase", "APDUs", "target", "", "by command"]
    for protocol, t0 in (("T=1", False), ("T=0", True)):
        burn, verify = apdus_in_process(t0)
        phases = [
            ("burn", burn, TARGETS["burn_apdus"]),
            ("read-back after reset", verify, TARGETS["readback_apdus"]),
        ]
        if esc is not None and protocol in esc:
            phases.append(("full ESC dialogue", esc[protocol], TARGETS["esc_apdus"]))
        for phase, dialogue, target in phases:
            counted = dialogue.by_command()
            checked = protocol == "T=1"
            verdict = _met(dialogue.total <= target) if checked and target else ""
            figure.rows.append(
                [
                    protocol,
                    phase,
                    str(dialogue.total),
                    f"<= {target}" if checked and target else "",
                    verdict,
                    ", ".join(f"{name} {n}" for name, n in counted.items()),
                ]
            )
            figure.values.setdefault(protocol, {})[phase] = {
                "apdus": dialogue.total,
                "by_command": counted,
                "sequence": dialogue.commands,
                "target": target if checked else None,
            }
    figure.values["why"] = {**WHY, "read-back": READBACK_WHY, "ESC dialogue": ESC_WHY}
    figure.notes.append("burn and read-back: an APDU trace at the wire, in process")
    if esc_skipped:
        figure.notes.append(f"full ESC dialogue skipped: {esc_skipped}")
    else:
        figure.notes.append(
            "full ESC dialogue: coolkey's PKCS#11 module (C_GetSlotList, C_GetTokenInfo) and "
            "libckyapplet's CKYApplet_GetIssuerInfo on the burned token, counted in the "
            "simulator's wire log through pcscd"
        )
    return figure


def why_lines() -> list[str]:
    lines = [f"  {name}: {why}" for name, why in WHY.items()]
    lines.append(f"  read-back (SELECT CoolKey, GET ISSUER INFO): {READBACK_WHY}")
    return lines


def esc_dialogues(stack: _Stack) -> dict[str, Dialogue]:
    """Burn a T=1 and a T=0 token through pcscd, then let ESC's libraries read them; the
    commands they sent, from the simulator's wire log."""
    from provision.burn import Outcome
    from provision.pcsc import PcscReader
    from simulator.bridge import ServeOptions
    from simulator.cli import make_token
    from tests.pcscd import burn, example_burn_plan

    bridge = stack.bridge()
    cards = {"T=1": 0, "T=0": 1}
    with example_burn_plan() as plan:
        for protocol, index in cards.items():
            bridge.insert(index, make_token(), ServeOptions(t0=protocol == "T=0"))
            reader = PcscReader(stack.conf.readers[index].name)
            try:
                result = burn(reader, plan)
            finally:
                reader.close()
            if result.outcome is not Outcome.VERIFIED:
                raise RuntimeError(f"the {protocol} burn through pcscd failed: {result.reason}")
    burned = {protocol: len(bridge.wire(index)) for protocol, index in cards.items()}

    _esc_probe("pkcs11")
    _esc_probe("issuer-info", *(stack.conf.readers[index].name for index in cards.values()))
    found = {}
    for protocol, index in cards.items():
        records = bridge.wire(index)[burned[protocol] :]
        found[protocol] = Dialogue([command_name(r.command) for r in records if r.event == "apdu"])
    bridge.close()
    return found


def _esc_probe(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.esclibs", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ESC's libraries failed ({' '.join(args)}): {done.stderr.strip()}")


def esc_skip_reason() -> str | None:
    from tests.esclibs import COOLKEY_MODULE

    if not COOLKEY_MODULE.is_file():
        return "ESC's libraries are not installed (Debian package coolkey)"
    return None


# -- figures 2 and 5: in process -----------------------------------------------------------


class CpuMeter:
    """Thread CPU time spent in wrapped callables, by part."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def add(self, part: str, seconds: float) -> None:
        with self._lock:
            self.seconds[part] += seconds

    def around(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, its CPU time counted to ``part``."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(part, time.thread_time() - start)

        return timed

    def whole_thread(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` run as a thread's whole work: the thread's CPU time is ``part``'s."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            try:
                return function(*args, **kwargs)
            finally:
                self.add(part, time.thread_time())

        return timed


def instrument(meter: CpuMeter) -> None:
    """Count the simulated cards' and the Phone Home server's CPU time apart from the rest.

    The cards: every command, power-up and the making of each blank token. The server: the
    whole of its accepting thread and of each request's thread.
    """
    from provision.phonehome.server import _Server4
    from simulator.card import VirtualToken

    VirtualToken.process = meter.around("simulator", VirtualToken.process)  # type: ignore[method-assign]
    VirtualToken.power_on = meter.around("simulator", VirtualToken.power_on)  # type: ignore[method-assign]
    blank = VirtualToken.blank.__func__  # type: ignore[attr-defined]
    VirtualToken.blank = classmethod(meter.around("simulator", blank))  # type: ignore[assignment]
    server: Any = _Server4
    server.process_request_thread = meter.whole_thread("server", server.process_request_thread)
    server.serve_forever = meter.whole_thread("server", server.serve_forever)


def simulated_run(tokens: int, directory: Path, *extra: str) -> dict[str, Any]:
    """``provision burn example-corp.yaml --simulated N`` in this process: its summary, wall
    time and CPU time. The report goes to ``directory``."""
    from provision import cli

    report = directory / f"report-{time.monotonic_ns()}.jsonl"
    argv = ["burn", str(EXAMPLE), "--simulated", str(tokens), "--report", str(report), "--json"]
    out, err = io.StringIO(), io.StringIO()
    cpu, wall = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main([*argv, *extra])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if status != 0:
        raise RuntimeError(f"the simulated run exited {status}: {err.getvalue()[-2000:]}")
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    report.unlink()
    return {"summary": summary, "wall": wall, "cpu": cpu, "tokens": tokens}


def pin_to_one_core() -> int:
    """Run this process on the allowed CPU that was idlest over half a second."""
    allowed = os.sched_getaffinity(0)
    first = _idle_ticks()
    time.sleep(0.5)
    later = _idle_ticks()
    cpu = max(allowed, key=lambda n: later.get(n, 0) - first.get(n, 0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def _idle_ticks() -> dict[int, int]:
    """Idle time of each CPU so far, from /proc/stat (idle + iowait, in clock ticks)."""
    ticks = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks[int(name[3:])] = int(fields[3]) + int(fields[4])
    return ticks


ROUNDS = 5  # default runs of figure 2; the fastest counts, as timeit takes the best


def child_throughput(tokens: int) -> dict[str, Any]:
    """Figure 2, in a child process pinned to one core: the default run ``ROUNDS`` times
    (the fastest counts: the one other work on the machine disturbed least), once with a
    ledger, once instrumented."""
    load = os.getloadavg()[0]
    cpu = pin_to_one_core()
    rounds = ROUNDS if tokens >= 1000 else 1
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        simulated_run(min(tokens, 200), directory)  # imports, first connections
        plains = [simulated_run(tokens, directory) for _ in range(rounds)]
        plain = min(plains, key=lambda run: run["wall"])
        ledger = simulated_run(tokens, directory, "--ledger", str(directory / "ledger.db"))
        meter = CpuMeter()
        instrument(meter)
        measured = simulated_run(tokens, directory)
    return {
        "cpu": cpu,
        "load": load,
        "plain": plain,
        "rounds": [run["tokens"] / run["wall"] for run in plains],
        "ledger": ledger,
        "instrumented": measured,
        "parts": dict(meter.seconds),
    }


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child_memory(tokens: int) -> dict[str, Any]:
    """Figure 5: RSS after a warm-up and after ``tokens`` more, in one process."""
    start = rss_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        simulated_run(200, directory)
        gc.collect()
        before = rss_bytes()
        run = simulated_run(tokens, directory)
        gc.collect()
        after = rss_bytes()
    return {"start": start, "before": before, "after": after, "verified": run["summary"]}


def _child(kind: str, *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.bench.benchmark", "--child", kind, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def figure_throughput(tokens: int) -> Figure:
    figure = Figure(2, "In-process simulated burn + verify, one core (the default run)")
    data = _child("throughput", str(tokens))
    plain, ledger, measured = data["plain"], data["ledger"], data["instrumented"]
    rate = plain["tokens"] / plain["wall"]
    parts = data["parts"]
    per_token = plain["cpu"] / plain["tokens"]
    simulator = parts.get("simulator", 0.0) / measured["tokens"]
    server = parts.get("server", 0.0) / measured["tokens"]
    # The timing calls cost CPU of their own: the tool's share is what the plain run spent
    # beyond the cards' and the server's.
    tool = per_token - simulator - server
    figure.header = ["run", "tokens/s", "CPU/token", "target", ""]
    target = TARGETS["tokens_per_second"]
    figure.rows = [
        [
            "default (report, no ledger)",
            f"{rate:.0f}",
            _ms(plain["cpu"] / plain["tokens"]),
            f">= {target:.0f}",
            _met(rate >= target),
        ],
        ["  per CPU second (1 / CPU per token)", f"{1 / per_token:.0f}", "", "", ""],
        [
            "with --ledger (SQLite)",
            f"{ledger['tokens'] / ledger['wall']:.0f}",
            _ms(ledger["cpu"] / ledger["tokens"]),
            "",
            "",
        ],
        ["  the tool", "", _ms(tool), f"{tool / per_token:.0%}", ""],
        ["  simulated cards", "", _ms(simulator), f"{simulator / per_token:.0%}", ""],
        ["  Phone Home server (the TPS)", "", _ms(server), f"{server / per_token:.0%}", ""],
    ]
    figure.values = {
        "tokens": plain["tokens"],
        "tokens_per_second": round(rate, 1),
        "tokens_per_cpu_second": round(1 / per_token, 1),
        "rounds_tokens_per_second": [round(value, 1) for value in data["rounds"]],
        "load_average_before": data["load"],
        "batch_tokens_per_second": plain["summary"]["tokens_per_second"],
        "cpu_ms_per_token": round(plain["cpu"] / plain["tokens"] * 1000, 3),
        "with_ledger_tokens_per_second": round(ledger["tokens"] / ledger["wall"], 1),
        "split_ms_per_token": {
            "tool": round(tool * 1000, 3),
            "simulator": round(simulator * 1000, 3),
            "phone_home_server": round(server * 1000, 3),
        },
        "instrumented_cpu_ms_per_token": round(measured["cpu"] / measured["tokens"] * 1000, 3),
        "target": target,
        "met": rate >= target,
    }
    rounds = ", ".join(f"{value:.0f}" for value in data["rounds"])
    figure.notes.append(
        f"{plain['tokens']} tokens a run, pinned to CPU {data['cpu']} (the idlest; load "
        f"average {data['load']:.2f} before); the fastest of {len(data['rounds'])} default "
        f"runs ({rounds} tokens/s); the default run writes "
        "the JSONL report and no ledger (--ledger adds one SQLite transaction per state, "
        "synchronous=FULL); progress is off, as on any output that is not a terminal"
    )
    figure.notes.append(
        "split: thread CPU time inside the cards' process/power_on/blank and in the server's "
        "threads, from a separate instrumented run "
        f"({_ms(measured['cpu'] / measured['tokens'])} a token with the timing calls); the "
        "tool is the rest of the default run's CPU time"
    )
    return figure


def figure_memory(tokens: int) -> Figure:
    figure = Figure(5, f"Memory: resident size around {tokens} in-process tokens")
    data = _child("memory", str(tokens))
    growth = (data["after"] - data["before"]) / 2**20
    target = TARGETS["rss_growth_mb"]
    figure.header = ["", "RSS"]
    figure.rows = [
        ["after start-up", f"{data['start'] / 2**20:.1f} MB"],
        ["after a 200-token warm-up (before)", f"{data['before'] / 2**20:.1f} MB"],
        [f"after {tokens} more tokens (after)", f"{data['after'] / 2**20:.1f} MB"],
        ["growth", f"{growth:+.1f} MB  (target < {target:.0f} MB: {_met(growth < target)})"],
    ]
    figure.values = {
        "tokens": tokens,
        "rss_start_bytes": data["start"],
        "rss_before_bytes": data["before"],
        "rss_after_bytes": data["after"],
        "growth_mb": round(growth, 2),
        "target_mb": target,
        "met": growth < target,
    }
    figure.notes.append("the default simulated run, twice in one process; gc before each reading")
    return figure


# -- figure 6: start-up --------------------------------------------------------------------


def provision_command() -> list[str]:
    script = Path(sys.executable).parent / "provision"
    if script.exists():
        return [str(script)]
    found = shutil.which("provision")
    return [found] if found else [sys.executable, "-m", "provision"]


def figure_startup(runs: int) -> Figure:
    figure = Figure(6, "Start-up: provision --help")
    command = [*provision_command(), "--help"]
    with tempfile.TemporaryDirectory() as cache:
        # Bytecode as an installed tool has it, in a cache of its own (the tree is left alone).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        cold = _wall(command, env)
        warm = sorted(_wall(command, env) for _ in range(runs))
    median = statistics.median(warm)
    target = TARGETS["help_ms"] / 1000
    figure.header = ["", "wall"]
    figure.rows = [
        [f"median of {runs}, bytecode cached", f"{median * 1000:.0f} ms"],
        ["fastest", f"{warm[0] * 1000:.0f} ms"],
        ["first run, empty bytecode cache (every module compiled)", f"{cold * 1000:.0f} ms"],
        ["target", f"< {target * 1000:.0f} ms: {_met(median < target)}"],
    ]
    figure.values = {
        "median_ms": round(median * 1000, 1),
        "min_ms": round(warm[0] * 1000, 1),
        "empty_bytecode_cache_ms": round(cold * 1000, 1),
        "command": " ".join(Path(command[0]).name if n == 0 else c for n, c in enumerate(command)),
        "target_ms": TARGETS["help_ms"],
        "met": median < target,
    }
    return figure


def _wall(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


# -- figures 3 and 4: through pcscd ----------------------------------------------------------


def pcscd_skip_reason() -> str | None:
    """Why this machine cannot run its own pcscd for the benchmark, or None."""
    pgrep = shutil.which("pgrep")
    if pgrep is not None:
        found = subprocess.run([pgrep, "-x", "pcscd"], capture_output=True, text=True, check=False)
        if found.stdout.strip():
            pids = ", ".join(found.stdout.split())
            return (
                f"another pcscd is running (PID {pids}); only one can run on a machine, and "
                "this benchmark starts its own with the repository's virtual readers"
            )
    try:
        from tests.pcscd import skip_reason
    except ImportError as exc:
        return f"the PC/SC fixtures cannot be loaded ({exc})"
    return skip_reason()


@dataclass
class _Stack:
    """The benchmark's own pcscd: its reader configuration and PID."""

    conf: Any
    pid: int

    def bridge(self) -> Any:
        from simulator.bridge import Bridge

        return Bridge.from_conf(self.conf)


@contextlib.contextmanager
def own_pcscd(directory: Path) -> Iterator[_Stack]:
    from tests.pcscd import running_pcscd

    with running_pcscd(directory) as (conf, pid):
        yield _Stack(conf, pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class LineRun:
    """One run of ``provision burn --watch`` on some readers, fed by the child process."""

    readers: int
    tokens: int
    window: float
    tool_cpu: float
    pcscd_cpu: float
    feeder_cpu: float
    card_times: list[float]
    apdus: list[int]
    failed: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.window

    @property
    def cpu_per_token(self) -> float:
        return self.tool_cpu / self.tokens

    @property
    def card_time(self) -> float:
        return statistics.median(self.card_times)

    @property
    def share(self) -> float:
        """The tool's CPU time per token over the time a token is in use."""
        return self.cpu_per_token / self.card_time

    @property
    def line_share(self) -> float:
        """The same over a reader's whole time per token, the swap included."""
        return self.cpu_per_token / (self.window * self.readers / self.tokens)


def line_run(stack: _Stack, readers: int, seconds: float, directory: Path) -> LineRun:
    """Burn tokens in ``readers`` readers for ``seconds`` after one token each as warm-up."""
    feeder = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.benchmark",
            "--child",
            "feeder",
            str(stack.conf.conf_dir.parent),
            str(readers),
            str(APDU_MS),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert feeder.stdin is not None and feeder.stdout is not None
    events: queue.Queue[list[str]] = queue.Queue()
    reading = threading.Thread(target=_read_lines, args=(feeder.stdout, events), daemon=True)
    reading.start()
    tool = None
    try:
        port = int(_next_event(events, "port", 30)[1])
        profile = _line_profile(directory, port)
        names = [reader.name for reader in stack.conf.readers[:readers]]
        tool = _start_provision(profile, names, directory)
        return _measure(stack, feeder, tool, events, readers, seconds)
    finally:
        if tool is not None:
            _stop(tool)
        feeder.stdin.close()
        try:
            feeder.wait(30)
        except subprocess.TimeoutExpired:
            feeder.kill()
            feeder.wait()


def _read_lines(stream: io.TextIOBase, events: queue.Queue[list[str]]) -> None:
    for line in stream:
        events.put(line.split())
    events.put(["eof"])


def _next_event(events: queue.Queue[list[str]], kind: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = events.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise RuntimeError(f"the card feeder sent no {kind!r} within {timeout:g} s") from None
        if event[0] == "eof":
            raise RuntimeError("the card feeder ended early")
        if event[0] == kind:
            return event


def _line_profile(directory: Path, port: int) -> Path:
    """The Example Corp profile with its Phone Home URL on the feeder's server."""
    text = EXAMPLE.read_text(encoding="utf-8")
    old = 'phone_home_url: "http://server.example.com:7888/cgi-bin/home/index.cgi"'
    if old not in text:
        raise RuntimeError(f"{EXAMPLE} no longer has the Phone Home URL this benchmark expects")
    url = f'phone_home_url: "http://127.0.0.1:{port}{PHONE_HOME_PATH}"'
    path = directory / "line-profile.yaml"
    path.write_text(text.replace(old, url), encoding="utf-8")
    return path


def _start_provision(profile: Path, names: list[str], directory: Path) -> subprocess.Popen[str]:
    report = directory / f"line-report-{len(names)}.jsonl"
    command = [*provision_command(), "burn", str(profile), "--watch", "--no-progress", "--json"]
    for name in names:
        command += ["--reader", name]
    return subprocess.Popen(
        [*command, "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=directory,
    )


def _measure(
    stack: _Stack,
    feeder: subprocess.Popen[str],
    tool: subprocess.Popen[str],
    events: queue.Queue[list[str]],
    readers: int,
    seconds: float,
) -> LineRun:
    warm: set[str] = set()
    while len(warm) < readers:
        warm.add(_token_event(events, tool)[1])
    start, marks = time.monotonic(), _cpu_marks(stack, feeder, tool)

    tokens: list[list[str]] = []
    while True:
        tokens.append(_token_event(events, tool))
        if time.monotonic() >= start + seconds:
            break
    end, ended = time.monotonic(), _cpu_marks(stack, feeder, tool)
    return LineRun(
        readers=readers,
        tokens=len(tokens),
        window=end - start,
        tool_cpu=ended[0] - marks[0],
        pcscd_cpu=ended[1] - marks[1],
        feeder_cpu=ended[2] - marks[2],
        card_times=[float(event[3]) - float(event[2]) for event in tokens],
        apdus=[int(event[4]) for event in tokens],
        failed=sum(event[5] != "ok" for event in tokens),
    )


def _token_event(events: queue.Queue[list[str]], tool: subprocess.Popen[str]) -> list[str]:
    if tool.poll() is not None:
        raise RuntimeError(f"provision exited early ({tool.returncode})")
    return _next_event(events, "token", 60)


def _cpu_marks(
    stack: _Stack, feeder: subprocess.Popen[str], tool: subprocess.Popen[str]
) -> tuple[float, float, float]:
    return cpu_seconds(tool.pid), cpu_seconds(stack.pid), cpu_seconds(feeder.pid)


def _stop(tool: subprocess.Popen[str]) -> None:
    if tool.poll() is None:
        tool.send_signal(signal.SIGTERM)  # a drain: the tokens in hand are finished first
    try:
        tool.wait(30)
    except subprocess.TimeoutExpired:
        tool.kill()
        tool.wait()


def figure_line(runs: list[LineRun]) -> tuple[Figure, Figure]:
    share = Figure(3, f"Through pcscd at {APDU_MS:g} ms per APDU: the tool's share per token")
    share.header = [
        "readers",
        "card time/token",
        "APDUs",
        "tool CPU/token",
        "share",
        "target",
        "share of reader time",
    ]
    target = TARGETS["tool_share"]
    for run in runs:
        share.rows.append(
            [
                str(run.readers),
                _ms(run.card_time),
                str(statistics.median(run.apdus)),
                _ms(run.cpu_per_token),
                f"{run.share:.1%}",
                f"<= {target:.0%}: {_met(run.share <= target)}",
                f"{run.line_share:.1%}",
            ]
        )
    one = runs[0]
    share.values = {
        "runs": [
            {
                "readers": run.readers,
                "tokens": run.tokens,
                "window_s": round(run.window, 2),
                "card_time_ms": round(run.card_time * 1000, 2),
                "apdus_per_token": statistics.median(run.apdus),
                "tool_cpu_ms_per_token": round(run.cpu_per_token * 1000, 3),
                "share": round(run.share, 4),
                "share_of_reader_time": round(run.line_share, 4),
                "tool_cpu_load": round(run.tool_cpu / run.window, 4),
                "pcscd_cpu_load": round(run.pcscd_cpu / run.window, 4),
                "simulator_cpu_load": round(run.feeder_cpu / run.window, 4),
                "failed": run.failed,
            }
            for run in runs
        ],
        "share": round(one.share, 4),
        "target": target,
        "met": all(run.share <= target for run in runs),
    }
    share.notes.append(
        "share: the provision process's user + system CPU time (every thread, waiting for "
        "cards included) over the measured window, per token burned, over the card time: from "
        "the token's first command to its release (the reset on disconnect), as the "
        "simulated card sees it; share of reader time: the same over the window x readers / "
        "tokens, the swap of tokens included"
    )

    scaling = Figure(4, f"Scaling at {APDU_MS:g} ms per APDU: tokens per second")
    scaling.header = ["readers", "tokens", "window", "tokens/s", "per reader", "CPU load"]
    for run in runs:
        scaling.rows.append(
            [
                str(run.readers),
                str(run.tokens),
                f"{run.window:.1f} s",
                f"{run.tokens_per_second:.2f}",
                f"{run.tokens_per_second / run.readers:.2f}",
                f"tool {run.tool_cpu / run.window:.0%}, pcscd {run.pcscd_cpu / run.window:.0%}, "
                f"cards {run.feeder_cpu / run.window:.0%}",
            ]
        )
    many = runs[-1]
    ratio = many.tokens_per_second / (many.readers * one.tokens_per_second)
    scaling.rows.append(
        [
            f"{many.readers} vs {many.readers} x 1",
            "",
            "",
            f"ratio {ratio:.2f}",
            f">= {TARGETS['scaling_ratio']}: {_met(ratio >= TARGETS['scaling_ratio'])}",
            "",
        ]
    )
    scaling.values = {
        "tokens_per_second": {str(run.readers): round(run.tokens_per_second, 3) for run in runs},
        "ratio": round(ratio, 3),
        "target": TARGETS["scaling_ratio"],
        "met": ratio >= TARGETS["scaling_ratio"],
    }
    scaling.notes.append(
        "each token is taken out once released and a fresh one put in; tokens/s includes "
        "that swap (pcscd notices a removal and an insertion only when it polls the reader)"
    )
    return share, scaling


# -- the card feeder (a child process) -------------------------------------------------------


def child_feeder(conf_dir: str, readers: int, apdu_ms: float) -> None:
    """Keep ``readers`` virtual readers supplied with blank tokens, and serve Phone Home.

    Prints ``port N`` once, then ``token READER START END APDUS ok|failed`` as each token is
    released by the host; stops when standard input closes.
    """
    from provision.phonehome.server import PhoneHomeServer
    from provision.phonehome.serviceinfo import ServiceInfo, render_service_info
    from provision.profile import load_profile
    from simulator.bridge import Bridge, ServeOptions
    from simulator.latency import Latency
    from simulator.readerconf import load_reader_conf

    profile = load_profile(EXAMPLE)
    body = render_service_info(ServiceInfo(profile.issuer_name, profile.service_info))
    conf = load_reader_conf(conf_dir)
    options = ServeOptions(latency=Latency.from_ms(per_apdu=apdu_ms))
    stop = threading.Event()
    lock = threading.Lock()

    def say(text: str) -> None:
        with lock:
            print(text, flush=True)

    with PhoneHomeServer({PHONE_HOME_PATH: body}) as server, Bridge.from_conf(conf) as bridge:
        say(f"port {server.port}")
        feeders = [
            threading.Thread(target=_feed, args=(bridge, index, options, stop, say), daemon=True)
            for index in range(readers)
        ]
        for thread in feeders:
            thread.start()
        sys.stdin.read()  # until the parent closes it
        stop.set()
        for thread in feeders:
            thread.join(10)


def _feed(
    bridge: Any, index: int, options: Any, stop: threading.Event, say: Callable[[str], None]
) -> None:
    while not stop.is_set():
        token = LineToken.blank()
        bridge.insert(index, token, options)
        while not token.done.wait(0.1):
            if stop.is_set() or time.monotonic() - token.inserted > 60:
                break
        bridge.remove(index)
        if token.done.is_set():
            outcome = "ok" if token.read_back else "failed"
            say(f"token {index} {token.first:.6f} {token.released:.6f} {token.apdus} {outcome}")


def _line_token_class() -> type[Any]:
    from simulator.card import VirtualToken

    class _LineToken(VirtualToken):
        """A blank token that notes when the host began and when it let go after reading
        back what it wrote (the reset of its disconnect)."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.done = threading.Event()
            self.inserted = time.monotonic()
            self.first = 0.0
            self.released = 0.0
            self.apdus = 0
            self.written = False
            self.read_back = False

        def process(self, apdu: bytes) -> bytes:
            if not self.apdus:
                self.first = time.monotonic()
            self.apdus += 1
            response = super().process(apdu)
            if response[-2:] == b"\x90\x00":
                if apdu[:2] == b"\x84\xf4":
                    self.written = True
                elif apdu[:2] == b"\xb0\xf6" and self.written:
                    self.read_back = True
            return response

        def power_on(self) -> bytes:
            if self.read_back and not self.done.is_set():
                self.released = time.monotonic()
                self.done.set()
            return super().power_on()

    return _LineToken


class LineToken:
    """Makes the feeder's tokens (the class is built on first use, in the child only)."""

    _class: type[Any] | None = None

    @classmethod
    def blank(cls) -> Any:
        if cls._class is None:
            cls._class = _line_token_class()
        return cls._class.blank()


# -- output ----------------------------------------------------------------------------------


def conditions() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "latency_model": f"{APDU_MS:g} ms per APDU, 0 ms per NV write",
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_figure(figure: Figure) -> None:
    print(f"\n{figure.number}. {figure.title}")
    if figure.skipped:
        print(f"   skipped: {figure.skipped}")
        return
    rows = [figure.header, *figure.rows] if figure.header else figure.rows
    widths = [max(len(row[n]) for row in rows if n < len(row)) for n in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(widths[n]) for n, cell in enumerate(row)]
        print("   " + "  ".join(cells).rstrip())
    for note in figure.notes:
        print(f"   ({note})")


def pcscd_figures(
    quick: bool, *, measure_esc: bool
) -> tuple[dict[str, Dialogue] | None, list[LineRun]]:
    """ESC's dialogue (figure 1) and the line runs (3, 4), with a pcscd of our own."""
    esc = None
    runs = []
    with tempfile.TemporaryDirectory() as tmp, own_pcscd(Path(tmp) / "pcscd") as stack:
        print(f"pcscd {stack.pid} started with {len(stack.conf.readers)} virtual readers")
        if measure_esc:
            esc = esc_dialogues(stack)
        seconds = 8.0 if quick else 25.0
        for readers in SCALING_READERS:
            time.sleep(SETTLE)  # the cards of the last run are seen gone
            print(f"line run: {readers} reader(s), {seconds:g} s ...", flush=True)
            runs.append(line_run(stack, readers, seconds, Path(tmp)))
    return esc, runs


def run_figures(args: argparse.Namespace) -> list[Figure]:
    quick = args.quick
    figures: dict[int, Figure] = {}
    reason = pcscd_skip_reason()
    esc: dict[str, Dialogue] | None = None
    esc_reason = reason or esc_skip_reason()
    runs: list[LineRun] = []
    if reason is None:
        try:
            esc, runs = pcscd_figures(quick, measure_esc=esc_reason is None)
        except (OSError, RuntimeError) as exc:
            reason = f"the benchmark's own pcscd failed: {exc}"
            esc_reason, esc, runs = reason, None, []
    figures[1] = figure_apdus(esc, esc_reason)
    print("throughput run ...", flush=True)
    figures[2] = figure_throughput(500 if quick else 3000)
    if runs:
        figures[3], figures[4] = figure_line(runs)
    else:
        for number, title in ((3, "Through pcscd: the tool's share"), (4, "Scaling")):
            figures[number] = Figure(number, title, skipped=reason)
    print("memory run ...", flush=True)
    figures[5] = figure_memory(2000 if quick else 10_000)
    figures[6] = figure_startup(5 if quick else 11)
    return [figures[n] for n in sorted(figures)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.benchmark")
    parser.add_argument("--quick", action="store_true", help="fewer tokens, shorter runs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the JSON here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _run_child(args.child)

    load = os.getloadavg()
    figures = run_figures(args)
    setting = {**conditions(), "load_average_at_start": [round(value, 2) for value in load]}
    print(
        f"\nMeasured on {setting['cores']} cores ({setting['cpu']}), Python {setting['python']}; "
        f"latency model {setting['latency_model']}; load average {load[0]:.2f} at the start "
        "(other work on the machine slows the figures down)"
    )
    for figure in figures:
        print_figure(figure)
    print("\nAPDUs beyond the minimum (the write and its secure channel), and why:")
    print("\n".join(why_lines()))
    document = {
        "conditions": setting,
        "quick": bool(args.quick),
        "figures": {str(f.number): f.as_dict() for f in figures},
    }
    text = json.dumps(document, indent=2)
    print("\n" + text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def _run_child(child: list[str]) -> int:
    kind, rest = child[0], child[1:]
    if kind == "feeder":
        child_feeder(rest[0], int(rest[1]), float(rest[2]))
        return 0
    runs: dict[str, Callable[[int], dict[str, Any]]] = {
        "throughput": child_throughput,
        "memory": child_memory,
    }
    print(json.dumps(runs[kind](int(rest[0]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
