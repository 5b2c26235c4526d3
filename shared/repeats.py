"""Logging a problem that recurs: once in full, then once per window with how often it came.

A relay or consumer fails the same way for every message while the bus or the database is
away; one line per message buried the log (5 878 tracebacks in 10 s of a NATS outage).
"""

import logging
import time
from collections.abc import Callable
from typing import Any


class RepeatedLog:
    """Warnings keyed by their message: the first of a window is logged (with its traceback,
    if given), the rest only counted, and that count goes with the first of the next window."""

    def __init__(
        self,
        logger: logging.Logger,
        window_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._clock = clock
        self._window = window_seconds
        self._seen: dict[str, tuple[float, int]] = {}  # message -> (window's start, unlogged)

    def warning(self, msg: str, *args: Any, count: int = 1, exc_info: bool = False) -> None:
        now = self._clock()
        started, unlogged = self._seen.get(msg, (None, 0))
        if started is not None and now - started < self._window:
            self._seen[msg] = (started, unlogged + count)
            return
        self._seen[msg] = (now, 0)
        if unlogged:
            msg += f" (and {unlogged} more like it in the {self._window:.0f} s before)"
        self._log.warning(msg, *args, exc_info=exc_info)
