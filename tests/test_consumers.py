"""shared.consumers' pull fetches against a real NATS JetStream, in a busy event loop."""

import asyncio
import secrets
import time

import nats
import nats.errors
from nats.js.api import StreamConfig


async def _timeouts_in_a_busy_loop(nats_url: str, batch: int) -> list[type]:
    """What each of 8 fetches of `batch` raises when the loop is held past its deadline while
    it waits for the answer to its first request."""
    nc = await nats.connect(nats_url)
    name = f"fetch{secrets.token_hex(4)}"
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=name.upper(), subjects=[f"{name}.>"]))
    try:
        sub = await js.pull_subscribe(f"{name}.events", durable="consumer")
        raised = []
        for _ in range(8):
            asyncio.get_running_loop().call_soon(time.sleep, 0.08)  # the loop, busy
            try:
                await sub.fetch(batch, timeout=0.05)
            except TimeoutError as exc:
                raised.append(type(exc))
        return raised
    finally:
        await js.delete_stream(name.upper())
        await nc.close()


async def test_a_one_message_fetch_past_its_deadline_raises_nats_timeout(nats_url):
    # FastStream's pull loop carries on after nats's TimeoutError only; any other ends it.
    assert await _timeouts_in_a_busy_loop(nats_url, 1) == [nats.errors.TimeoutError] * 8


async def test_nats_py_still_raises_the_builtin_timeout_from_a_batched_fetch(nats_url):
    # nats-io/nats.py#1008, why consumers fetch one message at a time. When this fails, nats-py
    # raises its own: `PullSub(batch_size=...)` may grow again.
    assert TimeoutError in await _timeouts_in_a_busy_loop(nats_url, 16)
