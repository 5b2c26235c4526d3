"""The gateway's configuration (`MODELPLANE_*` environment variables)."""

import os
from typing import Any

from pydantic import Field, SecretStr, model_validator

from services.gateway.upstream import REPLY_SECONDS
from shared.service_table import ServiceSpec, backends, current_table, parse_urls
from shared.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Each forwarded service's replicas (base URLs, comma-separated) and the requests kept in
    # flight to each replica at once, by the service's name in shared/service_table.py: read
    # from MODELPLANE_<NAME>_URL and MODELPLANE_<NAME>_CONNECTIONS (in code: `<name>_url=`,
    # `<name>_connections=`); a service not named gets its table entry's defaults.
    service_urls: dict[str, str] = Field(default_factory=dict)
    service_connections: dict[str, int] = Field(default_factory=dict)
    # The largest request body taken (MODELPLANE_MAX_BODY_BYTES); a larger one is 413. What a
    # request writes goes out as an event too, and the bus takes 1 MiB a message by default.
    max_body_bytes: int = 512 * 1024
    # The largest body of a streamed path (a service's `streamed_paths`: file uploads), which
    # goes on to its service as it arrives (MODELPLANE_MAX_UPLOAD_BYTES); a larger one is 413.
    max_upload_bytes: int = 10 * 1024**3
    # A streamed body may pause this long between two pieces before the request is cut off
    # (408), and its service gets this long to answer once the body is sent (503 after).
    upload_idle_seconds: float = 60.0
    upload_reply_seconds: float = 3600.0
    # A client connection gets this long for each request's headers, its first included, and
    # to start its next request on a kept-alive connection; then it is closed.
    header_timeout_seconds: float = 5.0
    # ... and this long to send a request's body, counted from the request's start (408 after).
    body_timeout_seconds: float = 30.0
    # Client connections held at once; more wait in the listen backlog until one closes.
    max_connections: int = 1024
    # A request's line and headers together; a larger head is refused with 431.
    max_header_bytes: int = Field(default=64 * 1024, ge=8 * 1024)
    # MODELPLANE_ADMIN_TOKEN: a bootstrap admin credential, accepted with subject "admin".
    admin_token: SecretStr | None = None
    # How long a verified token is trusted without asking the database again: a token revoked
    # (or a membership changed) through another gateway process takes effect within it; this
    # process forgets a token it revokes at once.
    token_cache_seconds: float = 0.5
    # An Idempotency-Key and the first reply to its POST are kept this long (24 h) for the
    # caller's retries; a key whose request is under way longer than the lock (its gateway
    # died mid-request; default: the body timeout + 90 s) may be taken again; expired keys
    # are deleted every prune interval.
    idempotency_key_seconds: float = 24 * 3600
    idempotency_lock_seconds: float | None = None
    idempotency_prune_seconds: float = 600.0

    @model_validator(mode="before")
    @classmethod
    def _per_service(cls, data: Any) -> Any:
        """`<name>_url` / `<name>_connections` given in code, else the service's variables."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        urls = dict(data.get("service_urls") or {})
        connections = dict(data.get("service_connections") or {})
        for key in [key for key in data if key not in cls.model_fields]:
            name, _, setting = key.rpartition("_")
            if setting == "url":
                urls.setdefault(name, data.pop(key))
            elif setting == "connections":
                connections.setdefault(name, data.pop(key))
        for spec in backends(current_table()):
            if (value := os.environ.get(spec.url_variable)) is not None:
                urls.setdefault(spec.name, value)
            if (value := os.environ.get(spec.connections_variable)) is not None:
                connections.setdefault(spec.name, value)
        data["service_urls"], data["service_connections"] = urls, connections
        return data

    @model_validator(mode="after")
    def _lock_outlasts_a_request(self) -> "GatewaySettings":
        """A key is taken over only once its request surely ended: past its body's time and
        its service's time to reply (a minute more by default)."""
        least = self.body_timeout_seconds + REPLY_SECONDS
        if self.idempotency_lock_seconds is None:
            self.idempotency_lock_seconds = least + 60.0
        elif self.idempotency_lock_seconds <= least:
            raise ValueError(
                "MODELPLANE_IDEMPOTENCY_LOCK_SECONDS must be more than"
                f" MODELPLANE_BODY_TIMEOUT_SECONDS + {REPLY_SECONDS:g} s"
            )
        return self

    @property
    def idempotency_lock(self) -> float:
        assert self.idempotency_lock_seconds is not None  # set by the validator
        return self.idempotency_lock_seconds

    def urls(self, spec: ServiceSpec) -> tuple[str, ...]:
        """The base URLs of the service's replicas."""
        return parse_urls(self.service_urls.get(spec.name) or spec.default_url())

    def connections(self, spec: ServiceSpec) -> int:
        return self.service_connections.get(spec.name, spec.connections)
