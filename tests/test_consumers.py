"""shared.consumers' push consumers against a real NATS JetStream."""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, StreamConfig

from shared.consumers import (
    EventConsumer,
    consumer_config,
    ensure_push_consumer,
    retire_consumers,
)
from shared.events.streams import stream_name


async def _nothing(*_) -> None:
    return None


@contextlib.asynccontextmanager
async def _scratch_stream(
    nats_url: str, prefix: str
) -> AsyncIterator[tuple[JetStreamContext, str]]:
    """A stream of its own on `<name>.>`, deleted on leaving; JetStream and the name."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"{prefix}{secrets.token_hex(4)}"
    stream = stream_name(name)
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{name}.>"]))
    try:
        yield js, name
    finally:
        await js.delete_stream(stream)
        await nc.close()


async def test_a_pull_consumer_of_an_earlier_release_goes_on_as_a_push_consumer(nats_url):
    # An earlier release made pull consumers; a push consumer of the same durable name takes
    # over after the last event the pull one acked, and a replica binds to it by its group.
    async with _scratch_stream(nats_url, "push") as (js, name):
        consumer = EventConsumer(
            durable=f"{name}-events", subject=f"{name}.events", handle=_nothing
        )
        for n in range(3):
            await js.publish(consumer.subject, str(n).encode())
        pull = await js.pull_subscribe(
            consumer.subject, durable=consumer.durable, config=ConsumerConfig(ack_wait=30)
        )
        for message in await pull.fetch(2, timeout=5):
            await message.ack_sync()
        await pull.unsubscribe()

        await asyncio.gather(  # two replicas starting at once
            ensure_push_consumer(js, consumer, max_deliveries=5),
            ensure_push_consumer(js, consumer, max_deliveries=5),
        )
        await ensure_push_consumer(js, consumer, max_deliveries=5)  # a push one stays as it is

        info = await js.consumer_info(consumer.stream, consumer.durable)
        assert info.config.deliver_group == consumer.durable
        assert info.config.max_deliver == 5
        replica = await js.subscribe(
            consumer.subject,
            queue=consumer.durable,
            durable=consumer.durable,
            config=consumer_config(consumer, 5),
            manual_ack=True,
        )
        message = await replica.next_msg(timeout=5)
        assert message.data == b"2"
        await message.ack_sync()
        await replica.unsubscribe()


async def test_a_consumer_the_table_no_longer_lists_is_deleted_and_no_other(nats_url):
    async with _scratch_stream(nats_url, "retire") as (js, name):
        kept = EventConsumer(durable=f"{name}-kept", subject=f"{name}.kept", handle=_nothing)
        for durable in (kept.durable, f"{name}-dropped", "someone-else"):
            await js.add_consumer(kept.stream, ConsumerConfig(durable_name=durable))
        await retire_consumers(js, name, [kept])
        left = {info.name for info in await js.consumers_info(kept.stream)}
        assert left == {kept.durable, "someone-else"}
