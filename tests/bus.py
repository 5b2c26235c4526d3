"""Reading what reached the bus: every event in a stream, as CloudEvents, for assertions."""

import asyncio
import time

from nats.aio.client import Client as NATS
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.events import CloudEvent


async def stream_events(nc: NATS, stream: str, subject: str | None = None) -> list[CloudEvent]:
    """Every event now stored in the stream (optionally one subject), oldest first."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    if info.state.messages == 0:
        return []
    sub = await js.pull_subscribe(
        subject or ">",
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5),
    )
    events: list[CloudEvent] = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=0.3)
            except (TimeoutError, NatsTimeout):
                # nats-py raises the plain asyncio error when a slow fetch runs out its deadline.
                break
            for msg in batch:
                events.append(CloudEvent.from_json(msg.data))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return events


async def wait_for_events(
    nc: NATS, stream: str, aggregate_id: object, count: int, timeout: float = 5.0
) -> list[CloudEvent]:
    """The aggregate's events once at least `count` have arrived (or whatever came by the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in await stream_events(nc, stream) if e.subject == str(aggregate_id)]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.05)


async def publish(nc: NATS, event: CloudEvent, msg_id: str | None = None) -> int:
    """Put an event on its stream as a producer's relay would; returns its stream sequence.
    A `msg_id` other than the event's id stores a second copy (a redelivery to consumers)."""
    ack = await nc.jetstream().publish(
        event.nats_subject, event.to_json(), headers={"Nats-Msg-Id": msg_id or str(event.id)}
    )
    return ack.seq


async def wait_consumed(
    nc: NATS, stream: str, durable: str, seq: int, timeout: float = 10.0
) -> None:
    """Until the durable consumer has acked everything up to `seq` of the stream."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while (await js.consumer_info(stream, durable)).ack_floor.stream_seq < seq:
        assert time.monotonic() < deadline, f"{durable} has not consumed {stream} #{seq}"
        await asyncio.sleep(0.05)
