"""Configuration from `MODELPLANE_*` environment variables, one settings class per service."""

from typing import Annotated

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.auth import LOCAL_INTERNAL_KEY
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
    # MODELPLANE_INTERNAL_KEYS: comma-separated keys of the gateway's credentials. The first
    # signs, every one verifies: to rotate, list the new key second everywhere, then first.
    internal_keys: Annotated[list[SecretStr], NoDecode] = [SecretStr(LOCAL_INTERNAL_KEY)]
    # How long a credential the gateway signs is good for.
    credential_seconds: float = 60.0
    # Where a service asks the gateway what it owns (whether a project exists).
    gateway_url: str = "http://127.0.0.1:8000"

    @field_validator("internal_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            keys = [k.strip() for k in value.split(",") if k.strip()]
            if not keys:
                raise ValueError("MODELPLANE_INTERNAL_KEYS names no key")
            return keys
        return value

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str) -> str:
        """`postgresql://...?sslmode=require` as users write it, in the form services use."""
        return normalize_database_url(value)
