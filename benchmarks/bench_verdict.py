"""What the verdict costs per answer: ``judge`` against the argmax the service did before it.

Run from the repository root: ``python -m benchmarks.bench_verdict [--rounds N]``. Both are
timed in interleaved rounds on the same rows (a confident digit, an uncertain one, a flat
non-digit), so background load hits them alike; the figure is the median over rounds of the
mean time per call within a round. The verdict adds no model call: this is its whole cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from app.verdicts import OperatingPoints, judge

POINTS = OperatingPoints(0.5, 0.9, "default")
ROWS = {
    "digit": np.array([0, 0, 0, 0, 0, 0, 0, 0.999, 0, 0.001], np.float32),
    "uncertain": np.array([0, 0, 0, 0, 0.55, 0, 0, 0.05, 0, 0.40], np.float32),
    "not_a_digit": np.full(10, 0.1, np.float32),
}


def argmax_only(row: np.ndarray) -> tuple[int, float]:
    """The answer before verdicts: the most probable digit and its probability."""
    digit = int(row.argmax())
    return digit, round(float(row[digit]), 6)


def per_call_us(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_verdict")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)
    print("| row | argmax only µs | judge µs | verdict costs µs |\n|---|---:|---:|---:|")
    for name, row in ROWS.items():
        before, after = [], []
        for _ in range(args.rounds):
            before.append(per_call_us(lambda row=row: argmax_only(row), args.calls))
            after.append(per_call_us(lambda row=row: judge(row, POINTS), args.calls))
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {name} | {b:.2f} | {a:.2f} | {a - b:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
