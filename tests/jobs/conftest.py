import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from services.jobs.integrations.executor import ExecutionStatus, Executor

WaitFinished = Callable[[Executor, str], Awaitable[ExecutionStatus]]


@pytest.fixture
def wait_finished() -> WaitFinished:
    async def wait(executor: Executor, handle: str, timeout: float = 20.0) -> ExecutionStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await executor.status(handle)
            if status.finished:
                return status
            assert time.monotonic() < deadline, f"{handle} still {status} after {timeout}s"
            await asyncio.sleep(0.05)

    return wait
