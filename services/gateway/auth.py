"""Bearer-token authentication: API tokens stored as sha256 hashes, plus the bootstrap admin token.

It sits on every request's hot path, so a verified token is remembered for a short TTL, and
the requests that find it expired wait for one lookup together rather than each making its own.
"""

import asyncio
import hashlib
import hmac
import secrets
import time
from functools import partial
from uuid import UUID

from pydantic import SecretStr
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from services.gateway import store
from services.gateway.domain import Principal, Role
from shared.errors import Problem, Unauthorized
from shared.http import problem_response

TOKEN_PREFIX = "mp_"
ADMIN_SUBJECT = "admin"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def problem_reply(problem: Problem, instance: str) -> Response:
    """A problem as the gateway answers it; a failed authentication also names the scheme."""
    headers = CHALLENGE if isinstance(problem, Unauthorized) else None
    return problem_response(problem.to_dict(instance=instance), headers)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        admin_token: SecretStr | None,
        cache_seconds: float = 30.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._admin_hash = hash_token(admin_token.get_secret_value()) if admin_token else None
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}
        # Lookups under way, by token hash: a client's 32 requests in flight when its entry
        # expires made 32 lookups at once, a stall of every request behind them.
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller named by an `Authorization: Bearer <token>` header, or 401."""
        if not authorization:
            raise Unauthorized("an 'Authorization: Bearer <token>' header is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token_hash = hash_token(token)
        cached = self._cache.get(token_hash)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        if self._admin_hash is not None and hmac.compare_digest(token_hash, self._admin_hash):
            return Principal(subject=ADMIN_SUBJECT, role=Role.ADMIN)
        principal = await self._shared_lookup(token_hash)
        if principal is None:
            raise Unauthorized("the token is unknown or revoked")
        return principal

    def forget(self, token_id: UUID) -> None:
        """Stop trusting a revoked token at once in this process. A lookup under way may have
        read it before the revocation: it answers the requests already waiting on it, no later
        one, and is not remembered."""
        self._lookups.clear()
        for key in [k for k, (p, _) in self._cache.items() if p.token_id == token_id]:
            del self._cache[key]

    async def _shared_lookup(self, token_hash: str) -> Principal | None:
        """The token's principal as stored, looked up once for every caller waiting on it. A
        caller that gives up (its client went away) leaves the lookup to the others."""
        lookup = self._lookups.get(token_hash)
        if lookup is None:
            lookup = asyncio.create_task(self._lookup(token_hash))
            self._lookups[token_hash] = lookup
            lookup.add_done_callback(partial(self._lookup_done, token_hash))
        return await asyncio.shield(lookup)

    def _lookup_done(self, token_hash: str, lookup: asyncio.Task) -> None:
        if self._lookups.get(token_hash) is lookup:
            del self._lookups[token_hash]

    async def _lookup(self, token_hash: str) -> Principal | None:
        async with self._sessionmaker() as session:
            row = await store.find_active_token(session, token_hash)
        if row is None:
            self._cache.pop(token_hash, None)
            return None
        principal = Principal(subject=row.subject, role=Role(row.role), token_id=row.id)
        if self._lookups.get(token_hash) is asyncio.current_task():  # not forgotten meanwhile
            self._cache[token_hash] = (principal, time.monotonic() + self._ttl)
        return principal


async def issue_token(session: AsyncSession, *, subject: str, role: Role) -> tuple[str, Row]:
    """Create a token; returns its plaintext (shown once, never stored) and its row."""
    token = new_token()
    row = await store.add_token(
        session, subject=subject, role=role.value, token_hash=hash_token(token)
    )
    return token, row
