"""shared.consumers against a real NATS JetStream."""

import asyncio
import secrets
import time

import nats
import nats.errors
from nats.js.api import StreamConfig

import shared.consumers  # noqa: F401  (what it does on import is under test)


async def test_a_fetch_whose_deadline_passed_in_a_busy_loop_raises_nats_timeout(nats_url):
    # FastStream's pull loop carries on after nats's TimeoutError only; nats-py 2.15-2.16 raise
    # the builtin one when the event loop was busy past a fetch's deadline, and the loop's
    # task died (FastStream restarted it, logging an ERROR). Here the loop is held past the
    # deadline while each fetch waits for the answer to its first request.
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
                await sub.fetch(16, timeout=0.05)  # FastStream's batched fetch
            except TimeoutError as exc:
                raised.append(type(exc))
        assert raised == [nats.errors.TimeoutError] * 8
    finally:
        await js.delete_stream(name.upper())
        await nc.close()
