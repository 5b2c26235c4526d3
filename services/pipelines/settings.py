"""The pipelines service's configuration (`MODELPLANE_*` environment variables)."""

from shared.settings import ServiceSettings


class PipelinesSettings(ServiceSettings):
    pipelines_host: str = "127.0.0.1"
    pipelines_port: int = 8004
    # How often stages at work are checked against their timeouts.
    pipelines_deadline_sweep_seconds: float = 5.0
