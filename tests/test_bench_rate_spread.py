"""How steadily a window's requests finished: the spread of the number finished per stretch of
time, which a closed loop's latency tail follows; read by the probe per window and by `make
bench` per cell, where the table prints it beside the cell's ops/s and p99."""

import math

import pytest

from bench import report
from bench.load import Result


def window(finished_s: list[float], seconds: float = 2.0) -> Result:
    return Result(
        ops=len(finished_s), errors=0, seconds=seconds, latencies_ms=[], finished_s=finished_s
    )


def test_requests_finishing_at_an_even_pace_have_no_spread() -> None:
    sd, fewest = window([i / 100 + 0.005 for i in range(200)]).rate_spread(0.1)
    assert sd == pytest.approx(0)
    assert fewest == pytest.approx(100)


def test_a_stalled_stretch_shows_as_spread_and_as_the_fewest() -> None:
    # Ten a stretch for two seconds, except none from 0.5 to 0.6 s and twenty from 0.6 to 0.7.
    finished = [i / 100 + 0.005 for i in range(200) if not 50 <= i < 70]
    finished += [0.6 + i / 200 + 0.0025 for i in range(20)]
    sd, fewest = window(finished).rate_spread(0.1)
    assert fewest == 0
    assert sd == pytest.approx(100 * math.sqrt(200 / 20) / 10)  # two of 20 off by 10 from 10


def test_the_window_s_last_part_stretch_is_left_out() -> None:
    # 0.35 s: three whole stretches of one request each, then half a stretch with two.
    sd, fewest = window([0.05, 0.15, 0.25, 0.31, 0.33], seconds=0.35).rate_spread(0.1)
    assert (sd, fewest) == (pytest.approx(0), pytest.approx(100))
    assert math.isnan(window([], seconds=0.05).rate_spread(0.1)[0])


def test_the_table_prints_each_cell_s_spread_and_a_dash_where_a_side_had_none() -> None:
    side = {"ops_per_s": 1000.0, "p50_ms": 30.0, "p99_ms": 60.0, "errors": 0}
    results = {
        "operations": [
            {
                "op": "transition",
                "clients": 32,
                "modelplane": side,
                "mlflow": side,
                "ratio": 1.0,
                "rate_per_1s": {
                    "modelplane": {"sd_pct": 11.2, "fewest_pct": 75.3},
                    "mlflow": {"sd_pct": None, "fewest_pct": None},
                },
            }
        ],
        "event_latency_ms": {"p50": 4.0, "p99": 9.0},
        "memory_mib": {
            "modelplane_idle": 1.0,
            "modelplane_load": 2.0,
            "mlflow_idle": 3.0,
            "mlflow_load": 4.0,
        },
        "list_latency_ms": {"10k": {"p50": 1.0, "p99": 2.0}},
    }
    lines = report.table(results).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("requests finished"))
    assert lines[header + 1].split() == [
        "transition",
        "32",
        "|",
        "MP",
        "11",
        "/",
        "75",
        "MLflow",
        "-",
        "/",
        "-",
    ]
