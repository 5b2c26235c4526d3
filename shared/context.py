"""The request-scoped facts that every log line and event carries: correlation id and actor,
and the caller the gateway's credential names (shared/auth.py)."""

from contextvars import ContextVar

from shared.auth import Caller

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
actor: ContextVar[str | None] = ContextVar("actor", default=None)
caller: ContextVar[Caller | None] = ContextVar("caller", default=None)

# Headers on internal calls (gateway -> service) and on NATS messages. A service takes the
# actor from the credential only; the actor header travels on NATS messages.
CORRELATION_HEADER = "X-Correlation-Id"
ACTOR_HEADER = "X-Modelplane-Actor"
