"""Event consumers: durable JetStream pull consumers (FastStream) that apply each event once.

A handler's effect and the inbox row `(consumer, event_id)` commit in one transaction, and the
message is acked only after that commit. A redelivered event finds its inbox row and is acked
without a second effect. A handler that keeps failing is retried with back-off; on the last
delivery the event goes to `deadletter.<consumer>` (stream DEADLETTER) for operators.
"""

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert

from shared import context
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.streams import dead_letter_subject, stream_name

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, CloudEvent], Awaitable[None]]
UnitOfWorkFactory = Callable[[], UnitOfWork]


def _fetch_timeouts_raised_as_nats_errors() -> None:
    """A pull fetch that runs out its deadline raises nats's `TimeoutError`, which FastStream's
    pull loop waits for and goes on. nats-py 2.15 and 2.16 raise the builtin one instead when
    the deadline passed before the fetch's second request (nats-io/nats.py#1008, open): one
    whose event loop was busy past it, as a service's is under load. The loop's task then
    died and FastStream restarted it, logging an ERROR with its traceback (68 times in the
    registry in one `make bench`). Here such a timeout is raised as nats's, as before 2.15."""
    pull = JetStreamContext.PullSubscription
    fetch = pull.fetch
    if getattr(fetch, "raises_nats_timeouts", False):
        return

    @functools.wraps(fetch)
    async def fetch_raising_nats_timeouts(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fetch(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as exc:
            raise nats.errors.TimeoutError from exc

    fetch_raising_nats_timeouts.raises_nats_timeouts = True  # type: ignore[attr-defined]
    pull.fetch = fetch_raising_nats_timeouts  # type: ignore[method-assign]


_fetch_timeouts_raised_as_nats_errors()


@dataclass(frozen=True)
class EventConsumer:
    """One durable consumer: `<service>-<producer>-<aggregate>-<event>` by convention."""

    durable: str
    subject: str  # e.g. "jobs.job.succeeded"
    handle: Handler

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

    async def on_message(_: Any, message: NatsMessage) -> None:
        body = message.raw_message.data  # the envelope exactly as published, not FastStream's decode
        metadata = message.raw_message.metadata
        try:
            event = CloudEvent.from_json(body)
        except ValueError:
            log.error("%s: not a CloudEvent, dead-lettered: %r", consumer.durable, body[:200])
            await _dead_letter(broker, consumer, body, "not a CloudEvent")
            await message.ack()
            return
        context.correlation_id.set(event.correlationid)
        context.actor.set(event.actor)
        try:
            applied = await apply_once(new_uow, inbox, consumer, event)
        except Exception as exc:
            if metadata.num_delivered >= max_deliveries:
                log.exception("%s: event %s failed for good", consumer.durable, event.id)
                await _dead_letter(broker, consumer, body, repr(exc))
                await message.ack()
            else:
                log.warning("%s: event %s failed (delivery %d): %r", consumer.durable, event.id,
                            metadata.num_delivered, exc)
                await message.nack(delay=min(2 ** metadata.num_delivered * 0.1, 30.0))
            return
        if not applied:
            log.info("%s: event %s already applied; acked again", consumer.durable, event.id)
        await message.ack()

    broker.subscriber(
        consumer.subject,
        stream=JStream(consumer.stream, declare=False),
        durable=consumer.durable,
        pull_sub=PullSub(batch_size=16, timeout=1.0),
        config=ConsumerConfig(
            durable_name=consumer.durable,
            deliver_policy=DeliverPolicy.ALL,
            max_deliver=max_deliveries,
            ack_wait=30,
        ),
        ack_policy=AckPolicy.MANUAL,
        title=consumer.durable,
    )(on_message)


async def _dead_letter(broker: NatsBroker, consumer: EventConsumer, body: bytes, error: str) -> None:
    await broker.publish(
        body,
        dead_letter_subject(consumer.durable),
        headers={"Modelplane-Error": error[:1000], "Modelplane-Consumer": consumer.durable},
        stream="DEADLETTER",
    )
