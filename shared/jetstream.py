"""Publishing to JetStream with an ack for each message, for the outbox relay.

The relay publishes every event a service commits, so what each publish costs the service is
paid on every write. nats-py's `publish_async` costs a task (its `wait_for` on a semaphore),
fresh random bytes and a PubAck object per message; here one subscription on an inbox of our
own receives every ack, and each message costs a future and a dictionary entry.
"""

import asyncio
import contextlib
import itertools

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

NO_RESPONDERS = "503"


class NotStored(Exception):
    """JetStream did not store the message: it refused it, or no stream takes its subject."""


class JetStreamPublisher:
    """Sends messages to JetStream; each `publish` returns a future that resolves to the
    message's sequence in its stream once stored, fails with `NotStored`, or is cancelled by
    `expire` when no ack came in time."""

    def __init__(self, nc: NATS, ack_timeout: float) -> None:
        self._nc = nc
        self._ack_timeout = ack_timeout
        self._prefix = ""
        self._subscription: Subscription | None = None
        self._tokens = itertools.count()
        # token -> (its ack, when to give up on it); in publishing order, so in deadline order
        self._waiting: dict[str, tuple[asyncio.Future[int], float]] = {}

    async def start(self) -> None:
        if self._subscription is None:
            self._prefix = f"{self._nc.new_inbox()}."
            self._subscription = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_reply)

    async def stop(self) -> None:
        """Stop listening for acks; the acks still awaited are cancelled."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            for ack, _ in self._waiting.values():
                ack.cancel()
            self._waiting.clear()
            if not self._nc.is_closed:
                with contextlib.suppress(NatsError):  # the connection is going away too
                    await subscription.unsubscribe()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[int]:
        if self._subscription is None:
            raise RuntimeError("the publisher is not started")
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[int] = loop.create_future()
        if (size := len(payload) + _headers_size(headers)) > self._nc.max_payload:
            # The server would close the connection on it: it is refused here instead.
            ack.set_exception(NotStored(
                f"{size} bytes with its headers, more than the server takes "
                f"({self._nc.max_payload})"
            ))  # fmt: skip
            return ack
        token = str(next(self._tokens))
        self._waiting[token] = (ack, loop.time() + self._ack_timeout)
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            del self._waiting[token]
            ack.cancel()
            raise
        return ack

    def expire(self) -> int:
        """Cancel the acks whose time is up (the message may or may not be stored); returns
        how many it gave up. Those its caller already gave up on are only forgotten."""
        now = asyncio.get_running_loop().time()
        expired = 0
        for token, (ack, deadline) in list(self._waiting.items()):
            if deadline > now:
                break  # the rest were published later
            del self._waiting[token]
            if ack.cancel():
                expired += 1
        return expired

    async def _on_reply(self, msg: Msg) -> None:
        entry = self._waiting.pop(msg.subject[len(self._prefix) :], None)
        if entry is None or entry[0].done():
            return  # given up on already
        ack = entry[0]
        if not msg.data and msg.headers and msg.headers.get("Status") == NO_RESPONDERS:
            ack.set_exception(NotStored("no stream takes the message's subject"))
            return
        try:
            reply = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            ack.set_exception(NotStored(f"not a JetStream ack: {msg.data[:200]!r}"))
            return
        if error := reply.get("error"):
            ack.set_exception(NotStored(f"JetStream refused it: {error}"))
        else:
            ack.set_result(reply["seq"])


def _headers_size(headers: dict[str, str]) -> int:
    """The bytes of a message's header block: `NATS/1.0`, a line per header, a blank line."""
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
