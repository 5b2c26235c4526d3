"""The gateway's configuration (`MODELPLANE_*` environment variables)."""

from pydantic import SecretStr

from shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    registry_url: str = "http://127.0.0.1:8001"
    jobs_url: str = "http://127.0.0.1:8002"
    # Requests in flight to the registry at once; more wait here. Enough to keep the registry
    # busy while some wait for Postgres; past that, extra ones only queue in its event loop,
    # where they delay every reply and the events it publishes (bench/README.md).
    registry_connections: int = 6
    # The largest request body taken (MODELPLANE_MAX_BODY_BYTES); a larger one is 413. What a
    # request writes goes out as an event too, and the bus takes 1 MiB a message by default.
    max_body_bytes: int = 512 * 1024
    # Each client following a running job's log holds one.
    jobs_connections: int = 100
    # MODELPLANE_ADMIN_TOKEN: a bootstrap admin credential, accepted with subject "admin".
    admin_token: SecretStr | None = None
    # How long a verified token is trusted without asking the database again: a token revoked
    # (or a membership changed) through another gateway process takes effect within it; this
    # process forgets a token it revokes at once.
    token_cache_seconds: float = 0.5
