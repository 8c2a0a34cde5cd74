"""APDUs and burns through pyscard → pcscd → vpcd → the simulator; prints the figures.

    sudo .venv/bin/python -m tests.bench.pcscd_bridge [--apdus N] [--rounds N]

It starts its own pcscd with 16 virtual readers (so no other pcscd may run) and stops it at
the end. Figures:

- the round trip of one APDU through pcscd, with the bridge's TCP_QUICKACK and without it
  (globalplatform.md §4.1: without, delayed ACK meets the driver's Nagle delay);
- 16 blank tokens burned and verified at once, one thread per reader, as fast as the
  simulator answers and with a latency model of real tokens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provision.burn import BurnPlan, Outcome
from provision.pcsc import PcscReader
from simulator.bridge import Bridge, ServeOptions
from simulator.cli import make_token
from simulator.latency import Latency
from simulator.readerconf import ReaderConf
from tests.pcscd import burn, example_burn_plan, running_pcscd, skip_reason

SELECT_ISD = bytes.fromhex("00A4040008A000000003000000")
REAL_TOKEN = Latency.from_ms(per_apdu=20, per_nv_write=10)


def apdu_round_trip(conf: ReaderConf, *, quickack: bool, apdus: int) -> list[float]:
    """Seconds per APDU, ``apdus`` times, on reader 0."""
    with Bridge.from_conf(conf, quickack=quickack) as bridge:
        bridge.insert(0, make_token())
        reader = PcscReader(conf.readers[0].name)
        transport = reader.wait_for_card(5)
        assert transport is not None
        times = []
        for _ in range(apdus):
            start = time.perf_counter()
            transport.transmit(SELECT_ISD)
            times.append(time.perf_counter() - start)
        transport.close()
        reader.close()
    return times


def burn_sixteen(conf: ReaderConf, plan: BurnPlan, latency: Latency) -> float:
    """Seconds to burn and verify one blank token in each of the 16 readers at once."""
    with Bridge.from_conf(conf) as bridge:
        for reader in conf.readers:
            bridge.insert(reader.index, make_token(), ServeOptions(latency=latency))
        readers = [PcscReader(reader.name) for reader in conf.readers]
        for reader in readers:
            transport = reader.wait_for_card(5)  # every card seen before the clock starts
            assert transport is not None
            transport.close()
        start = time.perf_counter()
        with ThreadPoolExecutor(len(readers)) as pool:
            results = list(pool.map(lambda reader: burn(reader, plan), readers))
        elapsed = time.perf_counter() - start
        for reader in readers:
            reader.close()
    assert all(result.outcome is Outcome.VERIFIED for result in results)
    return elapsed


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.bench.pcscd_bridge")
    parser.add_argument("--apdus", type=int, default=200, help="APDUs per round-trip run")
    parser.add_argument("--rounds", type=int, default=3, help="16-token burns per setting")
    args = parser.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    with (
        example_burn_plan() as plan,
        tempfile.TemporaryDirectory() as tmp,
        running_pcscd(Path(tmp)) as (conf, pid),
    ):
        print(f"pcscd {pid}, {len(conf.readers)} virtual readers")
        for quickack in (True, False):
            times = apdu_round_trip(conf, quickack=quickack, apdus=args.apdus)
            print(
                f"APDU round trip, TCP_QUICKACK {'on ' if quickack else 'off'}: "
                f"median {_ms(statistics.median(times))}, mean {_ms(statistics.fmean(times))} "
                f"over {len(times)} APDUs"
            )
        for name, latency in (
            ("no card latency", Latency()),
            ("20 ms/APDU + 10 ms/write", REAL_TOKEN),
        ):
            runs = [burn_sixteen(conf, plan, latency) for _ in range(args.rounds)]
            best = min(runs)
            print(
                f"16 tokens burned and verified in parallel, {name}: best {best:.3f} s "
                f"({16 / best:.1f} tokens/s), runs {', '.join(f'{r:.3f}' for r in runs)} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
