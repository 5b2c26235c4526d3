"""The request-scoped facts that every log line and event carries: correlation id and actor,
and the caller the gateway's credential names (shared/auth.py)."""

from contextvars import ContextVar

from shared.auth import Caller

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
actor: ContextVar[str | None] = ContextVar("actor", default=None)
caller: ContextVar[Caller | None] = ContextVar("caller", default=None)

# The header that carries the correlation id on internal calls (gateway -> service). Who acts
# travels in the gateway's credential (shared.auth.CREDENTIAL_HEADER), never in a plain header.
CORRELATION_HEADER = "X-Correlation-Id"
