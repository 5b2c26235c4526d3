"""shared.consumers' push consumers against a real NATS JetStream."""

import asyncio
import secrets

import nats
from nats.js.api import ConsumerConfig, StreamConfig

from shared.consumers import (
    EventConsumer,
    consumer_config,
    ensure_push_consumer,
    retire_consumers,
)


async def _nothing(*_) -> None:
    return None


async def test_a_pull_consumer_of_an_earlier_release_goes_on_as_a_push_consumer(nats_url):
    # An earlier release made pull consumers; a push consumer of the same durable name takes
    # over after the last event the pull one acked, and a replica binds to it by its group.
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"push{secrets.token_hex(4)}"
    consumer = EventConsumer(durable=f"{name}-events", subject=f"{name}.events", handle=_nothing)
    await js.add_stream(StreamConfig(name=consumer.stream, subjects=[f"{name}.>"]))
    try:
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
    finally:
        await js.delete_stream(consumer.stream)
        await nc.close()


async def test_a_consumer_the_table_no_longer_lists_is_deleted_and_no_other(nats_url):
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    name = f"retire{secrets.token_hex(4)}"
    kept = EventConsumer(durable=f"{name}-kept", subject=f"{name}.kept", handle=_nothing)
    await js.add_stream(StreamConfig(name=kept.stream, subjects=[f"{name}.>"]))
    try:
        for durable in (kept.durable, f"{name}-dropped", "someone-else"):
            await js.add_consumer(kept.stream, ConsumerConfig(durable_name=durable))
        await retire_consumers(js, name, [kept])
        left = {info.name for info in await js.consumers_info(kept.stream)}
        assert left == {kept.durable, "someone-else"}
    finally:
        await js.delete_stream(kept.stream)
        await nc.close()
