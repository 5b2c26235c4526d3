"""Bearer-token authentication: API tokens stored as sha256 hashes, plus the bootstrap admin token.

A token names a `Caller` (its platform role and project limit, its subject's memberships) and
the credential the gateway signs for it to the services. It sits on every request's hot path,
so a verified token is remembered for a short TTL (under a second: a token revoked through
another gateway process, or a membership changed, takes effect within it), and the requests
that find it expired wait for one lookup together rather than each making its own.
"""

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from uuid import UUID

from pydantic import SecretStr
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import Response

from services.gateway import store
from shared.auth import Caller, CredentialSigner, Role
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


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A caller and the credential that carries them to a service."""

    caller: Caller
    credential: str


class Authenticator:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        admin_token: SecretStr | None,
        signer: CredentialSigner,
        cache_seconds: float = 0.5,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._admin_hash = hash_token(admin_token.get_secret_value()) if admin_token else None
        self._signer = signer
        # A credential outlives its cache entry, so a service never gets one about to expire.
        self._ttl = min(cache_seconds, signer.lifetime_seconds / 2)
        self._cache: dict[str, tuple[Authenticated, float]] = {}
        # Lookups under way, by token hash: a client's 32 requests in flight when its entry
        # expires made 32 lookups at once, a stall of every request behind them.
        self._lookups: dict[str, asyncio.Task[Authenticated | None]] = {}

    async def authenticate(self, authorization: str | None) -> Authenticated:
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
            admin = self._authenticated(Caller(subject=ADMIN_SUBJECT, role=Role.ADMIN))
            self._cache[token_hash] = (admin, now + self._ttl)
            return admin
        found = await self._shared_lookup(token_hash)
        if found is None:
            raise Unauthorized("the token is unknown or revoked")
        return found

    def forget(self, token_id: UUID) -> None:
        """Stop trusting a revoked token at once in this process. A lookup under way may have
        read it before the revocation: it answers the requests already waiting on it, no later
        one, and is not remembered."""
        self._lookups.clear()
        for key in [k for k, (a, _) in self._cache.items() if a.caller.token_id == token_id]:
            del self._cache[key]

    def forget_subject(self, subject: str) -> None:
        """A subject's memberships changed: their next request looks their roles up again."""
        self._lookups.clear()
        for key in [k for k, (a, _) in self._cache.items() if a.caller.subject == subject]:
            del self._cache[key]

    def _authenticated(self, caller: Caller) -> Authenticated:
        return Authenticated(caller, self._signer.sign(caller))

    async def _shared_lookup(self, token_hash: str) -> Authenticated | None:
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

    async def _lookup(self, token_hash: str) -> Authenticated | None:
        async with self._sessionmaker() as session:
            row = await store.find_active_token(session, token_hash)
            memberships = [] if row is None else await store.roles_of_subject(session, row.subject)
        if row is None:
            self._cache.pop(token_hash, None)
            return None
        caller = Caller(
            subject=row.subject,
            role=Role(row.role) if row.role is not None else None,
            project_roles={m.project_id: Role(m.role) for m in memberships},
            projects=None if row.project_ids is None else frozenset(row.project_ids),
            token_id=row.id,
        )
        found = self._authenticated(caller)
        if self._lookups.get(token_hash) is asyncio.current_task():  # not forgotten meanwhile
            self._cache[token_hash] = (found, time.monotonic() + self._ttl)
        return found


async def issue_token(
    session: AsyncSession,
    *,
    subject: str,
    role: Role | None,
    projects: Sequence[UUID] | None = None,
) -> tuple[str, Row]:
    """Create a token; returns its plaintext (shown once, never stored) and its row."""
    token = new_token()
    row = await store.add_token(
        session,
        subject=subject,
        role=role.value if role else None,
        project_ids=None if projects is None else list(dict.fromkeys(projects)),
        token_hash=hash_token(token),
    )
    return token, row
