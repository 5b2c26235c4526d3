"""The table on the terminal and the JSON in bench/results/."""

import json
import math
import statistics
from datetime import UTC, datetime
from pathlib import Path

from bench.targets import Check

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RUNS_JUDGED = 3


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(results: dict) -> str:
    lines = registry_table(results) if "operations" in results else []
    if (measured := results.get("datasets")) is not None:
        hashed, added = measured["hashing"], measured["incremental_version"]
        lines += [
            "" if lines else "datasets (DVC, issue 37):",
            (
                f"datasets: hashing {hashed['bytes'] / 2**20:.0f} MiB in {hashed['files']} files: "
                f"DVC {_fmt(hashed['dvc_mib_per_s'])} MiB/s, md5sum {_fmt(hashed['md5sum_mib_per_s'])} "
                f"MiB/s, ratio {_fmt(hashed['ratio'], 3)}"
            ),
            (
                f"datasets: a version sharing {added['shared_files']} of its {added['files']} files "
                f"with its parent added {added['bytes_added']} of {added['total_bytes']} bytes "
                f"({100 * added['share_uploaded']:.2f} %)"
            ),
        ]
    lines += target_lines(results.get("targets"), issue=34)
    return "\n".join(lines)


def target_lines(checks: list[dict] | None, issue: int) -> list[str]:
    """Each target the run measured, met or MISSED, under the table."""
    if not checks:
        return []
    lines = ["", f"targets (issue {issue}, bench/README.md):"]
    for check in checks:
        bound = "at_least" if "at_least" in check else "at_most"
        lines.append(_verdict(Check(check["target"], check["value"], bound, check[bound])))
    return lines


def _verdict(check: Check, suffix: str = "") -> str:
    return (
        f"  {'met' if check.met else 'MISSED':<7} {check.target}: {_fmt(check.value, 2)} "
        f"({check.bound.replace('_', ' ')} {check.limit:g}{suffix})"
    )


def registry_table(results: dict) -> list[str]:
    head = (
        f"{'op':<16}{'clients':>8} | {'MP ops/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'err':>5} | "
        f"{'MLflow ops/s':>12}{'p50 ms':>8}{'p99 ms':>8}{'err':>5} | {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for row in results["operations"]:
        mp, ml = row["modelplane"], row["mlflow"]
        lines.append(
            f"{row['op']:<16}{row['clients']:>8} | {_fmt(mp['ops_per_s']):>9}{_fmt(mp['p50_ms'], 2):>8}"
            f"{_fmt(mp['p99_ms'], 2):>8}{mp['errors']:>5} | {_fmt(ml['ops_per_s']):>12}"
            f"{_fmt(ml['p50_ms'], 2):>8}{_fmt(ml['p99_ms'], 2):>8}{ml['errors']:>5} | {_fmt(row['ratio'], 2):>6}"
        )
    lines += [
        "",
        "requests finished per 1 s, sd / fewest in % of the mean (a slow second lifts p99):",
    ]
    for row in results["operations"]:
        if spreads := row.get("rate_per_1s"):
            sides = "   ".join(
                f"{label} {_fmt(spreads[side]['sd_pct'], 0):>3} / {_fmt(spreads[side]['fewest_pct'], 0):>3}"
                for label, side in (("MP", "modelplane"), ("MLflow", "mlflow"))
            )
            lines.append(f"{row['op']:<16}{row['clients']:>8} | {sides}")
    ev = results["event_latency_ms"]
    mem = results["memory_mib"]
    lines += [
        "",
        (
            f"event latency (commit -> NATS subscriber, create_version load): p50 {_fmt(ev['p50'], 2)} ms, "
            f"p99 {_fmt(ev['p99'], 2)} ms"
        ),
        (
            f"memory MiB: modelplane idle {_fmt(mem['modelplane_idle'])} / load {_fmt(mem['modelplane_load'])}; "
            f"mlflow idle {_fmt(mem['mlflow_idle'])} / load {_fmt(mem['mlflow_load'])}"
        ),
        f"memory MiB: the platform's MLflow tracking server idle {_fmt(mem.get('tracking_idle'))}",
    ]
    for key, value in results["list_latency_ms"].items():
        lines.append(
            f"list latency {key}: p50 {_fmt(value['p50'], 2)} ms, p99 {_fmt(value['p99'], 2)} ms"
        )
    return lines


def write(results: dict, section: str, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """`<section>-latest.json` and a dated copy, `<section>-<UTC time>.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dated = directory / f"{section}-{stamp}.json"
    latest = directory / f"{section}-latest.json"
    dated.write_text(text)
    latest.write_text(text)
    return latest, dated


def median_lines(section: str, runs: int = RUNS_JUDGED, directory: Path = RESULTS_DIR) -> list[str]:
    """Each target of the section's last `runs` dated results, judged on the median of its values:
    the targets are judged this way, never on one run of a noisy machine."""
    dated = sorted(directory.glob(f"{section}-2*.json"))[-runs:]
    if not dated:
        return []
    found: dict[str, list[dict]] = {}
    for path in dated:
        for check in json.loads(path.read_text()).get("targets", []):
            found.setdefault(check["target"], []).append(check)
    lines = [
        "",
        f"targets, median of the last {len(dated)} runs"
        + (f" ({runs} are judged; run the section again)" if len(dated) < runs else "")
        + f": {', '.join(path.stem.removeprefix(section + '-') for path in dated)}",
    ]
    for target, seen in found.items():
        bound = "at_least" if "at_least" in seen[-1] else "at_most"
        values = [check["value"] for check in seen]
        median = None if None in values else statistics.median(values)
        each = f"; each {', '.join(_fmt(v, 2) for v in values)}"
        lines.append(_verdict(Check(target, median, bound, seen[-1][bound]), each))
    return lines


def written(results: dict, section: str) -> int:
    """The section's results written, and its targets judged over its last runs."""
    latest, dated = write(results, section)
    print(f"\nwrote {latest} and {dated}")
    print("\n".join(median_lines(section)))
    return 0
