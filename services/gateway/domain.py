"""The gateway's own rules, pure Python, no I/O. Who may do what with the services' data is
the services' to decide (shared/auth.py carries the caller to them)."""

from shared.errors import InvalidInput
from shared.integrations import BACKENDS, Concern


def check_backend(concern: Concern, backend: str) -> None:
    """An IntegrationConfig names one of the backends that serve its concern."""
    allowed = BACKENDS[concern]
    if backend not in allowed:
        raise InvalidInput(
            f"{concern.value} has no backend {backend!r}; it is one of {', '.join(allowed)}",
            kind="unknown-integration-backend",
            allowed=list(allowed),
        )
