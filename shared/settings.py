"""Configuration from `MODELPLANE_*` environment variables, one settings class per service."""

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.database_url import normalize_database_url

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/modelplane"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class ServiceSettings(BaseSettings):
    """What every service needs: its database, the bus, how it logs and where it listens."""

    model_config = SettingsConfigDict(env_prefix="MODELPLANE_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    nats_url: str = DEFAULT_NATS_URL
    log_format: str = "text"  # "json" in production: one object a line
    log_level: str = "INFO"
    db_pool_size: int = 20
    # How often the outbox relay sweeps for events the fast path did not publish.
    relay_poll_seconds: float = 1.0
    # A consumer gives an event this many deliveries before it goes to the dead-letter subject.
    max_deliveries: int = 5
    # Seconds within which JetStream drops a re-published event with the same Nats-Msg-Id.
    duplicate_window_seconds: float = 600.0

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        """`postgresql://...?sslmode=require` as users write it, in the form services use."""
        return normalize_database_url(value)
