"""How steady this machine's CPU is: one process per core counts the rounds of a fixed loop it
gets through in each 0.1 s, for a few seconds, and the spread of those counts is printed.

    .venv/bin/python -m bench.steadiness [SECONDS]

A latency tail at 32 clients follows the machine's slow stretches (`bench/README.md`, the
twenty-first round). On these VMs the hypervisor can take a third of a core for most of a second
without it showing as stolen time in `/proc/stat`; run this before reading a p99 as the code's.
"""

import multiprocessing
import os
import statistics
import sys
import time

BUCKET_S = 0.1


def _rounds_per_bucket(seconds: float) -> list[int]:
    counts = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        rounds, stop = 0, start + BUCKET_S
        while time.perf_counter() < stop:
            for _ in range(1000):
                pass
            rounds += 1
        counts.append(rounds)
    return counts


def spread(counts: list[int]) -> tuple[float, float]:
    """(standard deviation, fewest) of the counts, in % of their mean; NaN without any."""
    if not counts or not (mean := statistics.fmean(counts)):
        return float("nan"), float("nan")
    return statistics.pstdev(counts) / mean * 100, min(counts) / mean * 100


def main(seconds: float) -> None:
    cores = os.cpu_count() or 1
    with multiprocessing.Pool(cores) as pool:
        per_core = pool.map(_rounds_per_bucket, [seconds] * cores)
    for core, counts in enumerate(per_core):
        sd, fewest = spread(counts)
        print(f"process {core}: per {BUCKET_S} s sd {sd:.1f} %, fewest {fewest:.0f} % of the mean")
    # Over the buckets every process filled: the slowest may have filled one fewer.
    sd, fewest = spread([sum(c) for c in zip(*per_core, strict=False)])
    print(f"all {cores} together: sd {sd:.1f} %, fewest {fewest:.0f} %")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
