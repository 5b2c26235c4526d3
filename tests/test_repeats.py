"""shared.repeats: a recurring problem is logged once per window, with how often it came."""

import logging

import pytest

from shared.repeats import RepeatedLog


def test_a_problem_repeated_within_the_window_is_logged_once_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = [100.0]
    repeats = RepeatedLog(logging.getLogger("test.repeats"), 10, lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="test.repeats"):
        for _ in range(5_000):
            repeats.warning("relay: publish failed (%d in the batch)", 1)
        repeats.warning("relay: another problem")
        clock[0] += 11
        repeats.warning("relay: publish failed (%d in the batch)", 1, count=3)
    assert [r.getMessage() for r in caplog.records] == [
        "relay: publish failed (1 in the batch)",
        "relay: another problem",
        "relay: publish failed (1 in the batch) (and 4999 more like it in the 10 s before)",
    ]
