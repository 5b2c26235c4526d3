"""The probe's reading of how steadily a window's requests finished: the spread of the number
finished per stretch of time, which a closed loop's latency tail follows."""

import math

import pytest

from bench.load import Result
from bench.probe import rate_spread


def window(finished_s: list[float], seconds: float = 2.0) -> Result:
    return Result(ops=len(finished_s), errors=0, seconds=seconds, latencies_ms=[],
                  finished_s=finished_s)  # fmt: skip


def test_requests_finishing_at_an_even_pace_have_no_spread() -> None:
    sd, fewest = rate_spread(window([i / 100 + 0.005 for i in range(200)]), 0.1)
    assert sd == pytest.approx(0)
    assert fewest == pytest.approx(100)


def test_a_stalled_stretch_shows_as_spread_and_as_the_fewest() -> None:
    # Ten a stretch for two seconds, except none from 0.5 to 0.6 s and twenty from 0.6 to 0.7.
    finished = [i / 100 + 0.005 for i in range(200) if not 50 <= i < 70]
    finished += [0.6 + i / 200 + 0.0025 for i in range(20)]
    sd, fewest = rate_spread(window(finished), 0.1)
    assert fewest == 0
    assert sd == pytest.approx(100 * math.sqrt(200 / 20) / 10)  # two of 20 off by 10 from 10


def test_the_window_s_last_part_stretch_is_left_out() -> None:
    # 0.35 s: three whole stretches of one request each, then half a stretch with two.
    sd, fewest = rate_spread(window([0.05, 0.15, 0.25, 0.31, 0.33], seconds=0.35), 0.1)
    assert (sd, fewest) == (pytest.approx(0), pytest.approx(100))
    assert math.isnan(rate_spread(window([], seconds=0.05), 0.1)[0])
