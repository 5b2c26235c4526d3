"""Resident memory (RSS) of process trees, idle and the peak while a load runs."""

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Self

import psutil

MIB = 1024 * 1024


def process_trees(pids: Iterable[int]) -> list[psutil.Process]:
    """Each pid's process and all its descendants, each process once; gone ones left out."""
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in (root, *root.children(recursive=True)):
                seen[proc.pid] = proc
    return list(seen.values())


def tree_rss_mib(pids: Iterable[int]) -> float:
    """Sum of RSS over each pid and all its descendants (each process counted once)."""
    return _rss_mib(process_trees(pids))


def _rss_mib(processes: Iterable[psutil.Process]) -> float:
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / MIB


class PeakSampler:
    """Samples the RSS of the process trees of `pids()` every `interval` s while active;
    keeps the peak. The trees are taken once, as it starts: finding a process's descendants
    reads every process on the machine, about a millisecond per tree, and the sampler runs in
    the load generator's event loop, where each sample holds up every client (a sample of the
    platform's three trees took 2 ms here, 80 times in a 20 s window)."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.25) -> None:
        self._pids = pids
        self._interval = interval
        self.peak = 0.0
        self._processes: list[psutil.Process] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        self._processes = process_trees(self._pids())
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, _rss_mib(self._processes))

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, _rss_mib(self._processes))
            await asyncio.sleep(self._interval)
