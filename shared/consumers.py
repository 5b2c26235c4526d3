"""Event consumers: durable JetStream push consumers (FastStream) that apply each event once.

A handler's effect and the inbox row `(consumer, event_id)` commit in one transaction, and the
message is acked only after that commit. A redelivered event finds its inbox row and is acked
without a second effect. A handler that keeps failing is retried with back-off; on the last
delivery the event goes to `deadletter.<consumer>` (stream DEADLETTER) for operators.
"""

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError
from sqlalchemy import Table, bindparam
from sqlalchemy.dialects.postgresql import insert

from shared import context
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.streams import dead_letter_subject, stream_name
from shared.repeats import RepeatedLog
from shared.statements import Statement

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]
UnitOfWorkFactory = Callable[[], UnitOfWork]

ACK_WAIT_SECONDS = 30
# Events sent and not yet acked, per consumer: a backlog arrives a few seconds' work at a time,
# each well inside its ack wait.
MAX_ACK_PENDING = 256


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


def inbox_claim(inbox: Table) -> Statement:
    """The statement that claims `(consumer, event_id)`: a row back, or none when claimed before."""
    return Statement(
        insert(inbox)
        .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"))
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )


async def apply_once(
    new_uow: UnitOfWorkFactory, claim: Statement, consumer: EventConsumer, event: CloudEvent
) -> bool:
    """Apply the event's effect unless this consumer already did; True when it was applied now."""
    async with new_uow() as uow:
        if await claim.fetchrow(uow.conn, consumer=consumer.durable, event_id=event.id) is None:
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
    claim = inbox_claim(inbox)

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
            applied = await apply_once(new_uow, claim, consumer, event)
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
        queue=consumer.durable,  # the durable consumer, its deliver group the same name
        config=consumer_config(consumer, max_deliveries),
        ack_policy=AckPolicy.MANUAL,
        title=consumer.durable,
    )(on_message)


def consumer_config(consumer: EventConsumer, max_deliveries: int) -> ConsumerConfig:
    """A push consumer: JetStream sends each event to one of the service's replicas (its deliver
    group), at a third of a pull consumer's CPU a message (no request per message); the same
    configuration from every replica, so whichever starts first creates it."""
    return ConsumerConfig(
        durable_name=consumer.durable,
        deliver_subject=f"modelplane.deliver.{consumer.durable}",
        deliver_group=consumer.durable,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=consumer.subject,
        max_deliver=max_deliveries,
        max_ack_pending=MAX_ACK_PENDING,
        ack_wait=ACK_WAIT_SECONDS,
    )


async def ensure_push_consumer(
    js: JetStreamContext, consumer: EventConsumer, max_deliveries: int
) -> None:
    """Turn the pull consumer an earlier release made into a push consumer that goes on after
    the last event it acked (the inbox drops any it sees again); nothing for a push one."""
    try:
        info = await js.consumer_info(consumer.stream, consumer.durable)
    except NotFoundError:
        return  # the subscriber creates it
    if info.config.deliver_subject:
        return
    config = consumer_config(consumer, max_deliveries)
    config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
    config.opt_start_seq = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
    # Another replica starting may be a step ahead: then its push consumer is the same as ours.
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(consumer.stream, consumer.durable)
    with contextlib.suppress(BadRequestError):
        await js.add_consumer(consumer.stream, config)
    log.info("%s: now a push consumer, from event %d", consumer.durable, config.opt_start_seq)


async def retire_consumers(
    js: JetStreamContext, service: str, consumers: Sequence[EventConsumer]
) -> None:
    """Delete the service's durable consumers (`<service>-…`) that its table no longer lists, on
    the streams it reads: left alone, each would count the events nobody reads for ever."""
    kept = {c.durable for c in consumers}
    for stream in sorted({c.stream for c in consumers}):
        for info in await js.consumers_info(stream):
            if info.name.startswith(f"{service}-") and info.name not in kept:
                await js.delete_consumer(stream, info.name)
                log.info("%s: no longer in %s's table, deleted", info.name, service)


async def _dead_letter(
    broker: NatsBroker, consumer: EventConsumer, body: bytes, error: str
) -> None:
    await broker.publish(
        body,
        dead_letter_subject(consumer.durable),
        headers={"Modelplane-Error": error[:1000], "Modelplane-Consumer": consumer.durable},
        stream="DEADLETTER",
    )
