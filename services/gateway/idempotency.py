"""`Idempotency-Key` on every POST of the public API (the gateway's own routes and every
service's), so that a client may retry a write whose reply it never got.

What it does, after Stripe's API and the IETF draft "The Idempotency-Key HTTP Header Field":
- A key is 1 to 255 printable ASCII characters, one per request; else 400
  `invalid-idempotency-key`. Keys are the caller's own (the token's subject) and kept
  `idempotency_key_seconds` (24 h) from their first request, in the gateway's database, so
  every gateway process sees them; older ones are pruned.
- The same key again with the same method, path, query and body: the first reply (status,
  Content-Type, ETag, Location, body) with `Idempotent-Replayed: true`, without reaching the
  service again. With another method, path or body: 422 `idempotency-key-reused`.
- While the first request is under way, another with its key is refused at once, 409
  `idempotency-key-in-use` with `Retry-After: 1`, not held: a client retrying a request it
  gave up on would otherwise pile up connections waiting on it.
- The first reply is kept whatever its status (a service's 4xx or 5xx too, as Stripe keeps a
  500: the write may have been applied). The key is released instead, for a retry to go
  through, when nothing could have applied the request: the service could not be connected
  to, or the request failed in the gateway before any reply.
- A reply that holds a secret (a new API token's plaintext, shown once) is never stored: the
  write is still not done twice, and a retry is told so, 409 `idempotent-reply-not-kept`.
- The body is hashed as it passes, never held for it: a streamed upload costs a sha256.
A POST without the header costs a scan of its headers.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from uuid import uuid4

import asyncpg
import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import store
from services.gateway.auth import Authenticator, problem_reply
from services.gateway.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotentReplyNotKept,
    InvalidIdempotencyKey,
)
from shared.errors import Problem, ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
# Set in a request's scope by what answers it without the service having been reached.
UNAPPLIED = "modelplane.unapplied"
_KEY = KEY_HEADER.lower().encode()
_REPLAYED = (REPLAYED_HEADER.lower().encode(), b"true")
_KEPT = frozenset({b"content-type", b"etag", b"location"})
_CLAIM_ATTEMPTS = 3
_DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, SQLAlchemyError)

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


def mark_unapplied(scope: Scope) -> None:
    """Say that this request's reply comes from the gateway alone: its key is released."""
    scope[UNAPPLIED] = True


def check_key(value: bytes) -> str:
    """The key as text, or InvalidIdempotencyKey."""
    if not 0 < len(value) <= MAX_KEY_LENGTH or not all(0x20 <= b <= 0x7E for b in value):
        raise InvalidIdempotencyKey(
            f"an {KEY_HEADER} is 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            max_length=MAX_KEY_LENGTH,
        )
    return value.decode("ascii")


class Idempotency:
    """ASGI middleware in front of the gateway's routes and its forwarding."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        connect: Connect,
        prefix: str,
        ttl_seconds: float,
        lock_seconds: float,
        secret_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.secret_paths = secret_paths  # whose replies hold a secret: never stored
        self._auth = authenticator
        self._connect = connect
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._lock = lock_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = None
        authorization = None
        for name, value in scope["headers"]:
            if name == _KEY:
                key = b"\x00" if key is not None else value  # two keys: not a valid one
            elif name == b"authorization":
                authorization = value
        if key is None or not scope["path"].startswith(self._prefix):
            await self.app(scope, receive, send)
            return
        try:
            text = check_key(key)
            bearer = None if authorization is None else authorization.decode("latin-1")
            subject = (await self._auth.authenticate(bearer)).caller.subject
        except Unauthorized:
            await self.app(scope, receive, send)  # answered as any request without a token
            return
        except Problem as problem:
            await problem_reply(problem, scope["path"])(scope, receive, send)
            return
        await _KeyedRequest(self, scope, receive, send, subject, text).run()


class _KeyedRequest:
    """One POST with a key: claimed and forwarded, or answered from what the key holds."""

    def __init__(
        self,
        owner: Idempotency,
        scope: Scope,
        receive: Receive,
        send: Send,
        subject: str,
        key: str,
    ) -> None:
        self.owner = owner
        self.scope, self.receive, self.send = scope, receive, send
        self.subject, self.key = subject, key
        self.claim = uuid4()
        self.method: str = scope["method"]
        target: bytes = scope.get("raw_path") or scope["path"].encode()
        if query := scope["query_string"]:
            target += b"?" + query
        self.target = target.decode("latin-1")
        self.digest = hashlib.sha256()
        self.body_done = False

    async def run(self) -> None:
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                claimed, found = await self._claim()
            except _DATABASE_ERRORS as exc:
                problem = ServiceUnavailable(
                    f"the gateway cannot keep the {KEY_HEADER} now ({type(exc).__name__}); retry",
                    service="gateway",
                )
                await problem_reply(problem, self.scope["path"])(
                    self.scope, self.receive, self.send
                )
                return
            if claimed:
                await self._forward()
                return
            if found is not None:
                await self._answer_from(found)
                return
            # Released or pruned between the two statements: claim it again.
        await self._in_use()

    async def _claim(self) -> tuple[bool, asyncpg.Record | None]:
        """Whether this request took the key, else what the key holds (None: nothing now)."""
        async with self.owner._connect() as conn:
            claimed = await store.claim_idempotency_key(
                conn,
                subject=self.subject,
                key=self.key,
                claim=self.claim,
                method=self.method,
                target=self.target,
                ttl_seconds=self.owner._ttl,
                lock_seconds=self.owner._lock,
            )
            if claimed:
                return True, None
            return False, await store.find_idempotency_key(conn, subject=self.subject, key=self.key)

    async def _in_use(self) -> None:
        problem = IdempotencyKeyInUse(
            f"a request with the {KEY_HEADER} {self.key!r} is under way; retry once it is answered"
        )
        reply = problem_reply(problem, self.scope["path"])
        reply.headers["Retry-After"] = "1"
        await reply(self.scope, self.receive, self.send)

    async def _answer_from(self, found: asyncpg.Record) -> None:
        if found["status"] is None:
            await self._in_use()
            return
        if (found["method"], found["target"]) == (self.method, self.target):
            await self._drain()
            if self.digest.digest() == found["request_hash"]:
                if found["body"] is None:
                    await self._not_kept(found["status"])
                else:
                    await self._replay(found)
                return
        problem = IdempotencyKeyReused(
            f"the {KEY_HEADER} {self.key!r} came first with another request"
            f" ({found['method']} {found['target']}, or another body)"
        )
        await problem_reply(problem, self.scope["path"])(self.scope, self.receive, self.send)

    async def _not_kept(self, status: int) -> None:
        problem = IdempotentReplyNotKept(
            f"the first request with the {KEY_HEADER} {self.key!r} was answered {status}; its"
            " reply held a secret shown once, so it is not given again",
            first_status=status,
        )
        await problem_reply(problem, self.scope["path"])(self.scope, self.receive, self.send)

    async def _replay(self, found: asyncpg.Record) -> None:
        stored = found["headers"]
        pairs = orjson.loads(stored) if isinstance(stored, str | bytes) else stored
        body: bytes = found["body"] or b""
        headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs]
        headers += [(b"content-length", str(len(body)).encode()), _REPLAYED]
        await self.send(
            {"type": "http.response.start", "status": found["status"], "headers": headers}
        )
        await self.send({"type": "http.response.body", "body": body})

    async def _hashing_receive(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request" and not self.body_done:
            self.digest.update(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
        return message

    async def _drain(self) -> None:
        while not self.body_done:
            if (await self._hashing_receive())["type"] != "http.request":
                return

    async def _forward(self) -> None:
        status = 0
        kept: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        answered = False

        async def capturing_send(message: Message) -> None:
            nonlocal status, kept, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [
                    (n.decode("latin-1"), v.decode("latin-1"))
                    for n, v in message.get("headers", ())
                    if n.lower() in _KEPT
                ]
            elif message["type"] == "http.response.body" and not answered:
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    answered = True
                    # Kept before the reply's end leaves: a retry sent on receiving it finds it.
                    await self._keep(status, kept, b"".join(chunks))
            await self.send(message)

        try:
            await self.owner.app(self.scope, self._hashing_receive, capturing_send)
        except BaseException:
            if not answered:
                await self._release()
            raise
        if not answered:
            await self._release()

    async def _keep(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if self.scope.get(UNAPPLIED):
            await self._release()
            return
        try:
            await self._drain()  # a body the route did not read is still the request's
            async with self.owner._connect() as conn:
                await store.complete_idempotency_key(
                    conn,
                    subject=self.subject,
                    key=self.key,
                    claim=self.claim,
                    request_hash=self.digest.digest(),
                    status=status,
                    headers=headers,
                    body=None if self.scope["path"] in self.owner.secret_paths else body,
                )
        except Exception:
            log.exception("idempotency: the reply to key %r was not kept", self.key)
            await self._release()

    async def _release(self) -> None:
        with suppress(Exception):
            async with self.owner._connect() as conn:
                await store.release_idempotency_key(
                    conn, subject=self.subject, key=self.key, claim=self.claim
                )


async def prune_forever(connect: Connect, *, ttl_seconds: float, every_seconds: float) -> None:
    """Delete keys past their time, every `every_seconds`, for as long as the gateway runs."""
    failures = 0
    while True:
        try:
            async with connect() as conn:
                pruned = await store.prune_idempotency_keys(conn, ttl_seconds=ttl_seconds)
            if pruned:
                log.info("idempotency: %d expired keys pruned", pruned)
            if failures:
                log.warning("idempotency: pruning works again after %d failures", failures)
            failures = 0
        except Exception:
            failures += 1
            if failures == 1:
                log.warning("idempotency: pruning failed; retrying quietly", exc_info=True)
        await asyncio.sleep(every_seconds)
