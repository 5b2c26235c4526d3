"""`make bench` reads the issues' targets off its own results: each one the run measured, met or
missed, in the JSON and under the table, and judged on the median of the last three runs."""

import copy
import json

from bench import report, targets


def side(ops_per_s: float, p50_ms: float, p99_ms: float) -> dict:
    return {"ops_per_s": ops_per_s, "p50_ms": p50_ms, "p99_ms": p99_ms, "errors": 0}


def cell(op: str, clients: int, modelplane: dict, ratio: float | None) -> dict:
    return {
        "op": op,
        "clients": clients,
        "modelplane": modelplane,
        "mlflow": side(300.0, 90.0, 120.0),
        "ratio": ratio,
    }


RUN = {
    "operations": [
        cell("create_version", 1, side(580.0, 1.65, 2.8), 3.2),
        cell("create_version", 32, side(1190.0, 26.3, 36.2), 2.96),
        cell("transition", 1, side(500.0, 3.28, 4.0), 3.0),  # one client over 3 ms
        cell("transition", 32, side(620.0, 51.0, 82.8), 1.9),  # under 2.5x, p99 over 1.6 x p50
    ],
    "event_latency_ms": {"p50": 4.9, "p99": 9.4},
    "memory_mib": {
        "modelplane_idle": 497.4,
        "modelplane_load": 536.3,
        "mlflow_idle": 1360.8,
        "mlflow_load": 1385.4,
    },
    "list_latency_ms": {"10k": {"p50": 1.62, "p99": 2.23}, "1m": {"p50": 1.7, "p99": 2.38}},
}


def verdicts(results: dict) -> dict[str, tuple[float | None, bool]]:
    return {check.target: (check.value, check.met) for check in targets.checks(results)}


def test_each_target_the_run_measured_is_met_or_missed_by_its_own_number() -> None:
    assert verdicts(RUN) == {
        "create_version x32, ops/s ÷ MLflow's": (2.96, True),
        "transition x32, ops/s ÷ MLflow's": (1.9, False),
        "create_version x32, p99 ÷ p50": (1.38, True),
        "transition x32, p99 ÷ p50": (1.62, False),
        "create_version x1, p50 ms": (1.65, True),
        "transition x1, p50 ms": (3.28, False),
        "event latency under the write load, p99 ms": (9.4, True),
        "platform idle memory, MiB": (497.4, True),
        "list of 1M versions, p50 ÷ the 10k list's": (1.05, True),
        "Modelplane's errors, all cells": (0, True),
    }


def test_a_bound_is_met_on_the_limit_itself_and_missed_past_it() -> None:
    run = copy.deepcopy(RUN)
    run["operations"][1]["modelplane"]["p99_ms"] = 26.3 * 1.6
    run["operations"][3]["ratio"] = 2.5
    run["memory_mib"]["modelplane_idle"] = 1024.1
    run["list_latency_ms"]["1m"]["p50"] = 162.0  # what an OFFSET scan to the millionth row costs
    run["operations"][2]["modelplane"]["errors"] = 1
    found = verdicts(run)
    assert found["create_version x32, p99 ÷ p50"] == (1.6, True)
    assert found["transition x32, ops/s ÷ MLflow's"] == (2.5, True)
    assert found["platform idle memory, MiB"] == (1024.1, False)
    assert found["list of 1M versions, p50 ÷ the 10k list's"] == (100.0, False)
    assert found["Modelplane's errors, all cells"] == (1, False)


def test_a_cell_measured_without_a_number_is_missed_and_one_not_measured_is_left_out() -> None:
    run = copy.deepcopy(RUN)
    run["event_latency_ms"] = {"p50": None, "p99": None}  # create_version ran, no event came
    run["operations"][3]["ratio"] = None  # MLflow finished nothing
    del run["operations"][0]  # BENCH_CLIENTS without 1 for this operation
    del run["list_latency_ms"]["1m"]
    found = verdicts(run)
    assert found["event latency under the write load, p99 ms"] == (None, False)
    assert found["transition x32, ops/s ÷ MLflow's"] == (None, False)
    assert "create_version x1, p50 ms" not in found
    assert "list of 1M versions, p50 ÷ the 10k list's" not in found

    only_reads = {**RUN, "operations": [cell("get_version", 32, side(3400.0, 9.0, 16.0), 8.0)]}
    assert "event latency under the write load, p99 ms" not in verdicts(only_reads)


def test_the_json_gives_each_target_its_bound_and_the_table_names_what_missed() -> None:
    run = copy.deepcopy(RUN)
    run["targets"] = [check.as_json() for check in targets.checks(run)]
    assert run["targets"][3] == {
        "target": "transition x32, p99 ÷ p50",
        "value": 1.62,
        "at_most": 1.6,
        "met": False,
    }
    assert run["targets"][1]["at_least"] == 2.5
    lines = report.table(run).splitlines()
    start = lines.index("targets (issue 34, bench/README.md):")
    printed = lines[start + 1 :]
    assert len(printed) == len(run["targets"])
    assert printed[0].split() == [
        "met",
        "create_version",
        "x32,",
        "ops/s",
        "÷",
        "MLflow's:",
        "2.96",
        "(at",
        "least",
        "2.5)",
    ]
    assert printed[3].split()[0] == "MISSED"
    assert [line.split()[0] for line in printed].count("MISSED") == 3


def test_the_pipelines_section_judges_the_full_hand_off_and_stalled_runs():
    from bench import pipelines

    results = {
        "hand_off_ms": {
            "stages": 20,
            "samples": 19,
            "p50_ms": 120.0,
            "p99_ms": 240.0,
            "max_ms": 240.0,
            "engine": {"p50_ms": 40.0, "p99_ms": 90.0, "max_ms": 90.0},
        },
        "burst": {
            "runs": 50,
            "stages": 5,
            "succeeded": 49,
            "stalled": ["r1"],
            "jobs": 245,
            "drain_seconds": 60.0,
            "jobs_own_seconds": 900.0,
            "longest_run_seconds": 50.0,
        },
    }
    checks = targets.pipeline_checks(results)
    assert [(c.target, c.met) for c in checks] == [
        ("stage hand-off on the local engine, p99 ms", True),
        ("runs of the burst of 50 that did not succeed", False),
    ]
    results["targets"] = [c.as_json() for c in checks]
    text = pipelines.table(results)
    assert "MISSED  runs of the burst of 50 that did not succeed: 1" in text
    assert "drain 60.0 s beside the jobs' own 900.0 s" in text


def test_the_serving_section_judges_the_gateways_cost_against_ray_serve_direct() -> None:
    def row(clients: int, added_p50_ms: float, ops_ratio: float, errors: int = 0) -> dict:
        direct = {**side(900.0, 2.0, 4.0), "errors": errors}
        return {
            "clients": clients,
            "ray_serve": direct,
            "gateway": side(700.0, 3.0, 6.0),
            "added_p50_ms": added_p50_ms,
            "ops_ratio": ops_ratio,
        }

    met = {
        c.target: (c.value, c.met)
        for c in targets.serving_checks({"predictions": [row(1, 1.9, 0.9), row(32, 9.0, 0.8)]})
    }
    missed = {
        c.target: (c.value, c.met)
        for c in targets.serving_checks(
            {"predictions": [row(1, 2.1, 0.9), row(32, 9.0, 0.79, errors=2)]}
        )
    }
    assert met == {
        "predict x1, p50 through the gateway - straight to Ray Serve, ms": (1.9, True),
        "predict x32, ops/s through the gateway ÷ straight to Ray Serve": (0.8, True),
        "prediction errors, all cells": (0, True),
    }
    assert [met for _, met in missed.values()] == [False, False, False]


def test_the_datasets_section_is_judged_alone_or_with_the_registry() -> None:
    measured = {
        "hashing": {
            "bytes": 2**30,
            "files": 7000,
            "dvc_mib_per_s": 400.0,
            "md5sum_mib_per_s": 560.0,
            "ratio": 0.714,
        },
        "incremental_version": {
            "files": 100,
            "shared_files": 95,
            "total_bytes": 1000,
            "bytes_added": 61,
            "share_uploaded": 0.061,
        },
    }
    alone = verdicts({"datasets": measured})
    assert alone == {
        "datasets: DVC hashing throughput ÷ md5sum's": (0.714, True),
        "datasets: share of bytes uploaded, parent shares 95 % of the files": (0.061, False),
    }
    assert verdicts({**RUN, "datasets": measured}).keys() >= alone.keys()
    text = report.table(
        {
            "datasets": measured,
            "targets": [c.as_json() for c in targets.checks({"datasets": measured})],
        }
    )
    assert "ratio 0.714" in text and "MISSED  datasets: share of bytes uploaded" in text


def test_each_target_is_judged_on_the_median_of_the_sections_last_three_runs(tmp_path) -> None:
    def run_at(stamp: str, section: str, ratio: float, p50: float | None) -> None:
        checks = [
            targets.Check("create_version x32, ops/s ÷ MLflow's", ratio, "at_least", 2.5),
            targets.Check("create_version x1, p50 ms", p50, "at_most", 3.0),
        ]
        results = {"targets": [check.as_json() for check in checks]}
        (tmp_path / f"{section}-{stamp}.json").write_text(json.dumps(results))

    run_at("20261201T000000Z", "registry", 1.0, 9.0)  # older than the last three: not judged
    run_at("20261207T100000Z", "registry", 2.4, 2.0)
    assert report.median_lines("registry", directory=tmp_path)[1] == (
        "targets, median of the last 2 runs (3 are judged; run the section again): "
        "20261201T000000Z, 20261207T100000Z"
    )
    run_at("20261207T110000Z", "registry", 3.1, 3.5)
    run_at("20261207T120000Z", "registry", 2.6, None)  # a run in which nothing came back
    run_at("20261207T130000Z", "serving", 0.1, 99.0)  # another section's
    (tmp_path / "registry-latest.json").write_text("{}")  # the undated copy is not a run

    lines = report.median_lines("registry", directory=tmp_path)
    assert lines[1] == (
        "targets, median of the last 3 runs: 20261207T100000Z, 20261207T110000Z, 20261207T120000Z"
    )
    assert " ".join(lines[2].split()) == (
        "met create_version x32, ops/s ÷ MLflow's: 2.60 (at least 2.5; each 2.40, 3.10, 2.60)"
    )
    assert lines[3].split()[:5] == ["MISSED", "create_version", "x1,", "p50", "ms:"]
    assert report.median_lines("pipelines", directory=tmp_path) == []
