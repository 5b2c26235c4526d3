"""The one table of Modelplane's services: what the launcher starts, the gateway forwards to,
`/readyz` asks, the merged OpenAPI reads, and `docker-compose.yml` and `deploy/` declare.

Adding a service is its folder `services/<name>/` plus one `ServiceSpec` in `SERVICES` below;
tests/test_deploy_files.py checks the compose file and the Kubernetes manifests against it.
"""

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

# The launcher hands its table to the processes it starts here (JSON), so a table a test
# defines reaches the gateway it launches; unset, every process reads `SERVICES`.
TABLE_VARIABLE = "MODELPLANE_SERVICE_TABLE"


@dataclass(frozen=True)
class ServiceSpec:
    """One service: how it is run, where it listens, and which public paths are its own."""

    name: str
    # Port of its first process in `make up`, compose and Kubernetes; more replicas get others.
    default_port: int
    # Public API path roots the gateway forwards to it as they came ("/api/v1/jobs" serves
    # "/api/v1/jobs" and "/api/v1/jobs/..."); empty for the gateway itself.
    path_roots: tuple[str, ...] = ()
    # Requests the gateway keeps in flight to it at once (per gateway process); more wait.
    connections: int = 100
    readiness_path: str = "/readyz"
    # Lower starts first; services of the same order start together, each waited on until
    # ready before the next order starts.
    start_order: int = 1
    # Where its settings read host and port; None: MODELPLANE_<NAME>_HOST / _PORT.
    host_env: str | None = None
    port_env: str | None = None
    # The module run as `python -m <module>`; None: services.<name>.
    module_name: str | None = None
    # Public paths (regular expressions, matched whole) whose request bodies the gateway streams
    # on as they arrive, up to its upload limit, instead of reading them whole (file uploads).
    streamed_paths: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.module_name or f"services.{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"MODELPLANE_{self.name.upper().replace('-', '_')}_"

    @property
    def host_variable(self) -> str:
        return self.host_env or f"{self.env_prefix}HOST"

    @property
    def port_variable(self) -> str:
        return self.port_env or f"{self.env_prefix}PORT"

    @property
    def url_variable(self) -> str:
        """Where the gateway reads its replicas' base URLs, comma-separated (`parse_urls`)."""
        return f"{self.env_prefix}URL"

    @property
    def replicas_variable(self) -> str:
        return f"{self.env_prefix}REPLICAS"

    @property
    def connections_variable(self) -> str:
        return f"{self.env_prefix}CONNECTIONS"

    @property
    def forwarded(self) -> bool:
        """True for a backend the gateway forwards to; False for the gateway itself."""
        return bool(self.path_roots)

    def replicas(self, environ: Mapping[str, str] | None = None) -> int:
        """`MODELPLANE_<NAME>_REPLICAS`, default 1."""
        environ = os.environ if environ is None else environ
        value = environ.get(self.replicas_variable, "").strip()
        count = int(value) if value else 1
        if count < 1:
            raise ValueError(f"{self.replicas_variable} must be 1 or more, not {value}")
        return count

    def default_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.default_port}"


# One entry per service. Serving, pipelines and datasets each add one line here.
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "registry",
        default_port=8001,
        path_roots=("/api/v1/registry",),
        # Enough to keep the registry busy while some requests wait for Postgres; more only
        # queue in its event loop and delay every reply and event (bench/README.md).
        connections=6,
    ),
    ServiceSpec(
        "jobs",
        default_port=8002,
        path_roots=("/api/v1/jobs", "/api/v1/gpu-types"),
        # Each client following a running job's log holds one.
        connections=100,
    ),
    ServiceSpec("serving", default_port=8004, path_roots=("/api/v1/serving",)),
    ServiceSpec("pipelines", default_port=8005, path_roots=("/api/v1/pipelines",)),
    ServiceSpec(
        "datasets",
        default_port=8006,
        path_roots=("/api/v1/datasets",),
        streamed_paths=(r"/api/v1/datasets/[^/]+/versions/upload",),
    ),
    ServiceSpec(
        "gateway",
        default_port=8000,
        start_order=2,  # after every backend it forwards to is ready
        host_env="MODELPLANE_HTTP_HOST",
        port_env="MODELPLANE_HTTP_PORT",
    ),
)


def by_name(table: Iterable[ServiceSpec] = SERVICES) -> dict[str, ServiceSpec]:
    return {spec.name: spec for spec in table}


def backends(table: Iterable[ServiceSpec] = SERVICES) -> tuple[ServiceSpec, ...]:
    """The services the gateway forwards to, in table order."""
    return tuple(spec for spec in table if spec.forwarded)


def start_groups(table: Iterable[ServiceSpec] = SERVICES) -> list[tuple[ServiceSpec, ...]]:
    """The table in start order: each group starts together once the one before is ready."""
    orders = sorted({spec.start_order for spec in table})
    return [tuple(spec for spec in table if spec.start_order == order) for order in orders]


def parse_urls(value: str) -> tuple[str, ...]:
    """`"http://a:1, http://b:2"` -> the replicas' base URLs, without trailing slashes."""
    return tuple(url.strip().rstrip("/") for url in value.split(",") if url.strip())


def format_urls(urls: Iterable[str]) -> str:
    return ",".join(urls)


def dump_table(table: Iterable[ServiceSpec]) -> str:
    return json.dumps([asdict(spec) for spec in table])


def load_table(text: str) -> tuple[ServiceSpec, ...]:
    specs = []
    for entry in json.loads(text):
        entry["path_roots"] = tuple(entry.get("path_roots", ()))
        entry["streamed_paths"] = tuple(entry.get("streamed_paths", ()))
        specs.append(ServiceSpec(**entry))
    return tuple(specs)


def current_table(environ: Mapping[str, str] | None = None) -> tuple[ServiceSpec, ...]:
    """The table this process runs with: the launcher's (`MODELPLANE_SERVICE_TABLE`) or ours."""
    environ = os.environ if environ is None else environ
    text = environ.get(TABLE_VARIABLE)
    return load_table(text) if text else SERVICES
