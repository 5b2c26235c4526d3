"""Event consumers: durable JetStream pull consumers (FastStream) that apply each event once.

A handler's effect and the inbox row `(consumer, event_id)` commit in one transaction, and the
message is acked only after that commit. A redelivered event finds its inbox row and is acked
without a second effect. A handler that keeps failing is retried with back-off; on the last
delivery the event goes to `deadletter.<consumer>` (stream DEADLETTER) for operators.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig, DeliverPolicy
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from shared import context
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.streams import dead_letter_subject, stream_name
from shared.repeats import RepeatedLog

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]
UnitOfWorkFactory = Callable[[], UnitOfWork]


def every_event(_: CloudEvent) -> bool:
    return True


@dataclass(frozen=True)
class EventConsumer:
    """One durable consumer: `<service>-<producer>-<aggregate>-<event>` by convention.

    `wants`: whether an event concerns it at all; one it does not is acked with no transaction
    and no inbox row (a consumer of a busy subject that acts on a few of its events)."""

    durable: str
    subject: str  # e.g. "jobs.job.succeeded"
    handle: Handler
    wants: Callable[[CloudEvent], bool] = every_event

    @property
    def stream(self) -> str:
        return stream_name(self.subject.split(".", 1)[0])


async def apply_once(
    new_uow: UnitOfWorkFactory, inbox: Table, consumer: EventConsumer, event: CloudEvent
) -> bool:
    """Apply the event's effect unless this consumer already did; True when it was applied now."""
    async with new_uow() as uow:
        claimed = await uow.session.execute(
            insert(inbox)
            .values(consumer=consumer.durable, event_id=event.id)
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        if claimed.first() is None:
            return False
        await consumer.handle(uow, event)
    return True


def subscribe(
    broker: NatsBroker,
    consumer: EventConsumer,
    new_uow: UnitOfWorkFactory,
    inbox: Table,
    *,
    max_deliveries: int,
) -> None:
    """Register the consumer on the broker; it starts consuming when the broker starts."""
    logger = RepeatedLog(log)  # while the database is away, every event fails alike

    async def on_message(_: Any) -> None:
        # The broker applies no types (`ServiceRuntime`): FastDepends would resolve a
        # `message: NatsMessage` parameter in a task group and a worker thread, per message.
        message: NatsMessage = broker.context.get_local("message")
        body = message.raw_message.data  # the envelope exactly as published
        metadata = message.raw_message.metadata
        try:
            event = CloudEvent.from_json(body)
        except ValueError:
            log.error("%s: not a CloudEvent, dead-lettered: %r", consumer.durable, body[:200])
            await _dead_letter(broker, consumer, body, "not a CloudEvent")
            await message.ack()
            return
        if not consumer.wants(event):
            await message.ack()
            return
        context.correlation_id.set(event.correlationid)
        context.actor.set(event.actor)
        try:
            applied = await apply_once(new_uow, inbox, consumer, event)
        except Exception as exc:
            if metadata.num_delivered >= max_deliveries:
                logger.warning(
                    "%s: event %s failed for good, dead-lettered",
                    consumer.durable,
                    event.id,
                    exc_info=True,
                )
                await _dead_letter(broker, consumer, body, repr(exc))
                await message.ack()
            else:
                logger.warning(
                    "%s: event %s failed (delivery %d): %r",
                    consumer.durable,
                    event.id,
                    metadata.num_delivered,
                    exc,
                )
                await message.nack(delay=min(2**metadata.num_delivered * 0.1, 30.0))
            return
        if not applied:
            log.info("%s: event %s already applied; acked again", consumer.durable, event.id)
        await message.ack()

    broker.subscriber(
        consumer.subject,
        stream=JStream(consumer.stream, declare=False),
        durable=consumer.durable,
        # One message a fetch: nats-py's fetch of a batch raises the builtin TimeoutError, which
        # ends FastStream's pull loop, when its deadline passed before its second request
        # (nats-io/nats.py#1008); one message is handed on as soon as it arrives, too.
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        config=ConsumerConfig(
            durable_name=consumer.durable,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=max_deliveries,
            ack_wait=30,
        ),
        ack_policy=AckPolicy.MANUAL,
        title=consumer.durable,
    )(on_message)


async def _dead_letter(
    broker: NatsBroker, consumer: EventConsumer, body: bytes, error: str
) -> None:
    await broker.publish(
        body,
        dead_letter_subject(consumer.durable),
        headers={"Modelplane-Error": error[:1000], "Modelplane-Consumer": consumer.durable},
        stream="DEADLETTER",
    )
