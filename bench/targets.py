"""The targets, read off a run's results: which held in this run and which did not.

Each is a bound on one number of the results; they are judged on the median of three runs
(`report.median_lines`). A target whose cell the run did not measure
(`BENCH_OPERATIONS`, `BENCH_CLIENTS`) is left out rather than called met or missed.
"""

from dataclasses import dataclass
from typing import Literal

# Issue 34: the writes' ratio to MLflow at 32 clients, and every 32-client cell's tail.
WRITES = ("create_version", "transition")
MANY_CLIENTS = 32
RATIO_AT_LEAST = 2.5
P99_OVER_P50_AT_MOST = 1.6
ONE_CLIENT_P50_AT_MOST_MS = 3.0
EVENT_P99_AT_MOST_MS = 25.0
IDLE_MEMORY_AT_MOST_MIB = 1024.0
# Keyset pagination reads a page at 1M versions as fast as at 10k; an OFFSET scan would be
# ~100× slower. The bound leaves room for the noise between two lists measured in turn.
LIST_1M_OVER_10K_AT_MOST = 1.5
# Issue 35: a prediction through the gateway beside the same request straight to Ray Serve.
PREDICT_ADDED_P50_AT_MOST_MS = 2.0
PREDICT_OPS_OF_DIRECT_AT_LEAST = 0.8
# Issue 37: DVC hashing as the datasets service does it, beside md5sum over the same files; the
# share of a version's bytes its push adds when its parent shares 95 % of its files.
DATASETS_HASH_RATIO_AT_LEAST = 0.70
DATASETS_SHARE_UPLOADED_AT_MOST = 0.06


@dataclass(frozen=True)
class Check:
    target: str
    value: float | None  # None: measured, but nothing came back (every request failed)
    bound: Literal["at_least", "at_most"]
    limit: float

    @property
    def met(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.limit if self.bound == "at_least" else self.value <= self.limit

    def as_json(self) -> dict:
        return {"target": self.target, "value": self.value, self.bound: self.limit, "met": self.met}


def datasets_checks(results: dict) -> list[Check]:
    """Issue 37's targets, when the run measured the datasets section."""
    if (measured := results.get("datasets")) is None:
        return []
    return [
        Check(
            "datasets: DVC hashing throughput ÷ md5sum's",
            measured["hashing"]["ratio"],
            "at_least",
            DATASETS_HASH_RATIO_AT_LEAST,
        ),
        Check(
            "datasets: share of bytes uploaded, parent shares 95 % of the files",
            measured["incremental_version"]["share_uploaded"],
            "at_most",
            DATASETS_SHARE_UPLOADED_AT_MOST,
        ),
    ]


def checks(results: dict) -> list[Check]:
    """Every target this run measured, in the order issue 34 lists them, then issue 37's."""
    cells = {(row["op"], row["clients"]): row for row in results.get("operations", [])}
    found = [
        Check(f"{op} x{MANY_CLIENTS}, ops/s ÷ MLflow's", row["ratio"], "at_least", RATIO_AT_LEAST)
        for op in WRITES
        if (row := cells.get((op, MANY_CLIENTS)))
    ]
    found += [
        Check(
            f"{op} x{MANY_CLIENTS}, p99 ÷ p50",
            _tail(row["modelplane"]),
            "at_most",
            P99_OVER_P50_AT_MOST,
        )
        for (op, clients), row in cells.items()
        if clients == MANY_CLIENTS
    ]
    found += [
        Check(f"{op} x1, p50 ms", row["modelplane"]["p50_ms"], "at_most", ONE_CLIENT_P50_AT_MOST_MS)
        for (op, clients), row in cells.items()
        if clients == 1
    ]
    # Measured while create_version runs at the run's most clients, whether events came or not.
    if ("create_version", max((clients for _, clients in cells), default=0)) in cells:
        found.append(
            Check(
                "event latency under the write load, p99 ms",
                results["event_latency_ms"]["p99"],
                "at_most",
                EVENT_P99_AT_MOST_MS,
            )
        )
    if (idle := results.get("memory_mib", {}).get("modelplane_idle")) is not None:
        found.append(Check("platform idle memory, MiB", idle, "at_most", IDLE_MEMORY_AT_MOST_MIB))
    lists = results.get("list_latency_ms", {})
    if "10k" in lists and "1m" in lists:
        small, large = lists["10k"]["p50"], lists["1m"]["p50"]
        ratio = round(large / small, 2) if small and large is not None else None
        found.append(
            Check(
                "list of 1M versions, p50 ÷ the 10k list's",
                ratio,
                "at_most",
                LIST_1M_OVER_10K_AT_MOST,
            )
        )
    # Not one of the bounds, but what every one of them assumes: an error answered fast
    # would otherwise count towards a latency met.
    if cells:
        errors = sum(row["modelplane"]["errors"] for row in cells.values())
        found.append(Check("Modelplane's errors, all cells", errors, "at_most", 0))
    return found + datasets_checks(results)


def _tail(side: dict) -> float | None:
    p50, p99 = side["p50_ms"], side["p99_ms"]
    return round(p99 / p50, 2) if p50 and p99 is not None else None


# Issue 36: the local engine's stage hand-off, and a burst of runs that all finish.
HAND_OFF_P99_AT_MOST_MS = 250.0


def pipeline_checks(results: dict) -> list[Check]:
    """The pipelines section's targets (bench/pipelines.py)."""
    burst = results["burst"]
    return [
        Check(
            "stage hand-off on the local engine, p99 ms",
            results["hand_off_ms"]["p99_ms"],
            "at_most",
            HAND_OFF_P99_AT_MOST_MS,
        ),
        Check(
            f"runs of the burst of {burst['runs']} that did not succeed",
            len(burst["stalled"]),
            "at_most",
            0,
        ),
    ]


def serving_checks(results: dict) -> list[Check]:
    """Issue 35's targets that the serving section's run measured."""
    cells = {row["clients"]: row for row in results.get("predictions", [])}
    found: list[Check] = []
    if row := cells.get(1):
        found.append(
            Check(
                "predict x1, p50 through the gateway - straight to Ray Serve, ms",
                row["added_p50_ms"],
                "at_most",
                PREDICT_ADDED_P50_AT_MOST_MS,
            )
        )
    if row := cells.get(MANY_CLIENTS):
        found.append(
            Check(
                f"predict x{MANY_CLIENTS}, ops/s through the gateway ÷ straight to Ray Serve",
                row["ops_ratio"],
                "at_least",
                PREDICT_OPS_OF_DIRECT_AT_LEAST,
            )
        )
    if cells:
        errors = sum(
            row["gateway"]["errors"] + row["ray_serve"]["errors"] for row in cells.values()
        )
        found.append(Check("prediction errors, all cells", errors, "at_most", 0))
    return found
