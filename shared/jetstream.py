"""Publishing to JetStream for the outbox relay: nats-py's `publish_async`, with a deadline.

`publish_async` returns a future per message that only an ack resolves; the relay gives up on
those whose ack did not come in time (`expire`), and the sweep publishes them again. Nothing is
published while the connection is down: a publish that raises inside `publish_async` keeps its
place among the pending for good, and 4 000 such stall every later one.
"""

import asyncio
import collections

from nats.aio.client import Client as NATS
from nats.errors import ConnectionReconnectingError
from nats.js.api import PubAck

# Messages awaiting their ack at once; past it a publish waits up to the ack timeout for room.
MAX_PENDING = 4000


class NotStored(Exception):
    """The message was not sent: the server would have refused it (and closed the connection)."""


class JetStreamPublisher:
    """Each `publish` returns a future that resolves to JetStream's `PubAck`, fails with its
    error (`nats.js.errors.APIError`, `NoStreamResponseError`, or `NotStored`), or is cancelled
    by `expire` when no ack came in time."""

    def __init__(self, nc: NATS, ack_timeout: float) -> None:
        self._nc = nc
        self._js = nc.jetstream(publish_async_max_pending=MAX_PENDING)
        self._ack_timeout = ack_timeout
        self._started = False
        # (ack, when to give up on it), in publishing order, so in deadline order
        self._waiting: collections.deque[tuple[asyncio.Future[PubAck], float]] = collections.deque()

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        """Stop publishing; the acks still awaited are cancelled."""
        self._started = False
        while self._waiting:
            self._waiting.popleft()[0].cancel()

    @property
    def waiting(self) -> int:
        """How many acks are still awaited."""
        return sum(not ack.done() for ack, _ in self._waiting)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PubAck]:
        if not self._started:
            raise RuntimeError("the publisher is not started")
        if not self._nc.is_connected:
            raise ConnectionReconnectingError
        if (size := len(payload) + _headers_size(headers)) > self._nc.max_payload:
            refused: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
            refused.set_exception(
                NotStored(
                    f"{size} bytes with its headers, more than the server takes "
                    f"({self._nc.max_payload})"
                )
            )
            return refused
        # No `wait_stall`: with one, each publish waits a turn of the event loop (a task for
        # `wait_for`), and under load the dispatch fell seconds behind the commits. A place
        # among the pending is freed by its ack or by `expire`.
        ack = await self._js.publish_async(subject, payload, headers=headers)
        self._waiting.append((ack, asyncio.get_running_loop().time() + self._ack_timeout))
        return ack

    def expire(self) -> int:
        """Cancel the acks whose time is up (the message may or may not be stored); returns
        how many it gave up. Those its caller already gave up on are only forgotten."""
        now = asyncio.get_running_loop().time()
        expired = 0
        while self._waiting and (self._waiting[0][1] <= now or self._waiting[0][0].done()):
            ack, _ = self._waiting.popleft()
            if ack.cancel():
                expired += 1
        return expired


def _headers_size(headers: dict[str, str]) -> int:
    """The bytes of a message's header block: `NATS/1.0`, a line per header, a blank line."""
    return 12 + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
