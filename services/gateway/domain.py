"""The gateway's own rules, pure Python, no I/O. Who may do what with the services' data is
the services' to decide (shared/auth.py carries the caller to them)."""

from services.gateway.errors import UnknownIntegrationBackend
from shared.integrations import BACKENDS, Concern


def check_backend(concern: Concern, backend: str) -> None:
    """An IntegrationConfig names one of the backends that serve its concern."""
    allowed = BACKENDS[concern]
    if backend not in allowed:
        raise UnknownIntegrationBackend(
            f"{concern.value} has no backend {backend!r}; it is one of {', '.join(allowed)}",
            allowed=list(allowed),
        )
