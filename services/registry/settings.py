"""The registry's configuration (`MODELPLANE_*` environment variables)."""

from shared.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    registry_host: str = "127.0.0.1"
    registry_port: int = 8001
