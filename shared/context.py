"""The request-scoped facts that every log line and event carries: correlation id and actor."""

from contextvars import ContextVar

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
actor: ContextVar[str | None] = ContextVar("actor", default=None)

# Headers on internal calls (gateway -> service) and on NATS messages.
CORRELATION_HEADER = "X-Correlation-Id"
ACTOR_HEADER = "X-Modelplane-Actor"
