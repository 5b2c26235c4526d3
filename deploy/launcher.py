"""`make up`: the whole platform on one machine, and the same `Platform` for end-to-end tests
and benchmarks.

Postgres and NATS are the ones named by `MODELPLANE_DATABASE_URL` / `MODELPLANE_NATS_URL`, else
embedded servers whose data persists under `.modelplane/`. Every service runs as its own
process (`python -m services.<name>`), exactly as it would in its own container.
"""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

import httpx

from shared.local_infra import (
    EmbeddedNats,
    EmbeddedPostgres,
    die_with_parent,
    free_port,
    log_tail,
    start_embedded_nats,
    start_embedded_postgres,
    stop_process,
    tcp_answers,
)

log = logging.getLogger("modelplane.launcher")

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".modelplane"
EMBEDDED_DATABASE = "modelplane"
DEFAULT_GATEWAY_PORT = 8000


class PlatformError(RuntimeError):
    """The platform did not come up; the message carries what its processes said."""


@dataclass(frozen=True)
class ServiceSpec:
    """How the launcher tells a service where to listen, and the gateway where to find it."""

    name: str
    host_variable: str
    port_variable: str
    url_variable: str | None = None


# Backends start alongside the gateway; the gateway reaches each through its URL variable.
BACKENDS = (
    ServiceSpec(
        "registry",
        "MODELPLANE_REGISTRY_HOST",
        "MODELPLANE_REGISTRY_PORT",
        "MODELPLANE_REGISTRY_URL",
    ),
    ServiceSpec("jobs", "MODELPLANE_JOBS_HOST", "MODELPLANE_JOBS_PORT", "MODELPLANE_JOBS_URL"),
)
GATEWAY = ServiceSpec("gateway", "MODELPLANE_HTTP_HOST", "MODELPLANE_HTTP_PORT")
SERVICES = {spec.name: spec for spec in (*BACKENDS, GATEWAY)}


@dataclass
class ServiceProcess:
    spec: ServiceSpec
    url: str
    process: subprocess.Popen
    log_path: Path | None
    log_file: IO[bytes] | None

    def output_tail(self) -> str:
        if self.log_path is None:
            return "(its output went to the terminal, above)"
        return log_tail(self.log_path)


class Platform:
    """Postgres, NATS, the backend services and the gateway, started and stopped together.

    `gateway_port` / `registry_port` default to free ports (tests run several platforms);
    `from_environment()` gives `make up`'s choices (gateway on 8000). `log_dir=None` sends the
    services' output to this terminal, else to `<log_dir>/<service>.log`.
    """

    def __init__(
        self,
        *,
        database_url: str | None = None,
        nats_url: str | None = None,
        host: str = "127.0.0.1",
        gateway_port: int | None = None,
        registry_port: int | None = None,
        jobs_port: int | None = None,
        admin_token: str | None = None,
        state_dir: Path = STATE_DIR,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        self.host = host
        self.admin_token = admin_token
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.ports = {
            GATEWAY.name: gateway_port or free_port(host),
            "registry": registry_port or free_port(host),
            "jobs": jobs_port or free_port(host),
        }
        self.services: dict[str, ServiceProcess] = {}
        self._embedded_postgres: EmbeddedPostgres | None = None
        self._embedded_nats: EmbeddedNats | None = None

    @classmethod
    def from_environment(cls) -> Self:
        def port(variable: str, default: int | None) -> int | None:
            value = os.environ.get(variable)
            return int(value) if value else default

        return cls(
            database_url=os.environ.get("MODELPLANE_DATABASE_URL") or None,
            nats_url=os.environ.get("MODELPLANE_NATS_URL") or None,
            host=os.environ.get("MODELPLANE_HTTP_HOST", "127.0.0.1"),
            gateway_port=port("MODELPLANE_HTTP_PORT", DEFAULT_GATEWAY_PORT),
            registry_port=port("MODELPLANE_REGISTRY_PORT", None),
            jobs_port=port("MODELPLANE_JOBS_PORT", None),
            admin_token=os.environ.get("MODELPLANE_ADMIN_TOKEN") or None,
        )

    # What callers read ---------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return self._url(self.ports[GATEWAY.name])

    @property
    def pids(self) -> dict[str, int]:
        """Service name -> pid of its process, for memory and CPU measurement."""
        return {name: service.process.pid for name, service in self.services.items()}

    @property
    def infra_pids(self) -> dict[str, int]:
        """Pids of the embedded Postgres and nats-server, if this platform started them."""
        pids: dict[str, int] = {}
        if self._embedded_postgres is not None and self._embedded_postgres.pid is not None:
            pids["postgres"] = self._embedded_postgres.pid
        if self._embedded_nats is not None:
            pids["nats"] = self._embedded_nats.pid
        return pids

    def service_url(self, name: str) -> str:
        return self._url(self.ports[name])

    def _url(self, port: int) -> str:
        # A wildcard bind address is not something a client can connect to.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{port}"

    # Start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._start_infrastructure()
            self._check_ports_free()
            env = self._child_env()
            for spec in SERVICES.values():
                self.services[spec.name] = self._spawn(spec, env)
            for spec in SERVICES.values():
                await self._wait_until_ready(self.services[spec.name])
            if self.admin_token is None:
                self.admin_token = await self._create_admin_token(env)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Gateway first (no request reaches a stopped backend), then backends, then the servers."""
        for name in reversed(list(self.services)):
            service = self.services.pop(name)
            await asyncio.to_thread(stop_process, service.process)
            if service.log_file is not None:
                service.log_file.close()
        if self._embedded_nats is not None:
            self._embedded_nats.stop()
            self._embedded_nats = None
        if self._embedded_postgres is not None:
            await asyncio.to_thread(self._embedded_postgres.stop)
            self._embedded_postgres = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def exited_service(self) -> ServiceProcess | None:
        """A service whose process has ended, if any: the platform is then no longer whole."""
        for service in self.services.values():
            if service.process.poll() is not None:
                return service
        return None

    # Steps ---------------------------------------------------------------------------------

    async def _start_infrastructure(self) -> None:
        if self.nats_url is None:
            # Started from this (the event loop's) thread: the server dies with its parent thread.
            self._embedded_nats = start_embedded_nats(self.state_dir / "nats")
            self.nats_url = self._embedded_nats.url
            log.info("embedded NATS at %s", self.nats_url)
        if self.database_url is None:
            self._embedded_postgres = await asyncio.to_thread(
                start_embedded_postgres, self.state_dir / "pgdata"
            )
            self.database_url = self._embedded_postgres.database_url(EMBEDDED_DATABASE)
            log.info("embedded Postgres at %s", self.database_url)

    def _check_ports_free(self) -> None:
        for name, port in self.ports.items():
            if tcp_answers(self.host, port):
                variable = SERVICES[name].port_variable
                raise PlatformError(f"port {port} for the {name} is in use; set {variable}")

    def _child_env(self) -> dict[str, str]:
        assert self.database_url is not None and self.nats_url is not None
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # log lines reach the terminal or file as they happen
            "MODELPLANE_DATABASE_URL": self.database_url,
            "MODELPLANE_NATS_URL": self.nats_url,
        }
        for spec in SERVICES.values():
            env[spec.host_variable] = self.host
            env[spec.port_variable] = str(self.ports[spec.name])
            if spec.url_variable is not None:
                env[spec.url_variable] = self.service_url(spec.name)
        # The services ask the gateway whether a project exists (shared/projects.py).
        env["MODELPLANE_GATEWAY_URL"] = self.gateway_url
        if self.admin_token is not None:
            env["MODELPLANE_ADMIN_TOKEN"] = self.admin_token
        # The jobs' directories and the default MLflow store live with the platform's state.
        env.setdefault("MODELPLANE_JOBS_STATE_DIR", str(self.state_dir / "jobs"))
        env.update(self.extra_env)
        return env

    def _spawn(self, spec: ServiceSpec, env: dict[str, str]) -> ServiceProcess:
        log_path = log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{spec.name}.log"
            log_file = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{spec.name}"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT if log_file is not None else None,
            # Own session: Ctrl-C reaches only the launcher, which stops services in order.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - see die_with_parent
        )
        log.info("started %s (pid %d) on %s", spec.name, process.pid, self.service_url(spec.name))
        return ServiceProcess(spec, self.service_url(spec.name), process, log_path, log_file)

    async def _wait_until_ready(self, service: ServiceProcess) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if (exited := self.exited_service()) is not None:
                    raise PlatformError(
                        f"{exited.spec.name} exited with code {exited.process.returncode}:\n"
                        f"{exited.output_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{service.url}/readyz")
                    if response.status_code == 200:
                        return
                if loop.time() > deadline:
                    raise PlatformError(
                        f"{service.spec.name} not ready at {service.url}/readyz after "
                        f"{self.ready_timeout:.0f} s:\n{service.output_tail()}"
                    )
                await asyncio.sleep(0.2)

    async def _create_admin_token(self, env: dict[str, str]) -> str:
        command = [
            sys.executable, "-m", "services.gateway",
            "create-token", "--subject", "admin", "--role", "admin",
        ]  # fmt: skip
        result = await asyncio.to_thread(
            subprocess.run,
            command,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = result.stdout.split()
        if result.returncode != 0 or not lines:
            raise PlatformError(
                f"create-token failed with code {result.returncode}:\n{result.stderr[-4000:]}"
            )
        # The CLI prints only the token; its last word is it even if a log line slipped through.
        return lines[-1]


def welcome(platform: Platform) -> str:
    url = platform.gateway_url
    return "\n".join(
        [
            "",
            "Modelplane is up.",
            f"  API                {url}",
            f"  OpenAPI            {url}/api/v1/openapi.json",
            f"  Admin token        {platform.admin_token}",
            f"  Database           {platform.database_url}",
            f"  NATS               {platform.nats_url}",
            "",
            "Try:",
            f'  curl -H "Authorization: Bearer {platform.admin_token}" {url}/api/v1/projects',
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


async def run(platform: Platform) -> int:
    """Start, print how to use it, then run until Ctrl-C / SIGTERM or until a service dies."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)

    starting = asyncio.create_task(platform.start())
    waiting = asyncio.create_task(stop_requested.wait())
    try:
        await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()  # its own cleanup stops whatever had started
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        try:
            starting.result()
        except PlatformError as error:
            log.error("%s", error)
            return 1
        print(welcome(platform), flush=True)
        while not stop_requested.is_set():
            if (exited := platform.exited_service()) is not None:
                log.error("%s exited with code %s", exited.spec.name, exited.process.returncode)
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiting), timeout=1.0)
        log.info("stopping")
        return 0
    finally:
        waiting.cancel()
        await platform.stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    # Their step-by-step INFO lines would bury the few lines a user needs.
    for noisy in ("embedded_postgres", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.exit(asyncio.run(run(Platform.from_environment())))


if __name__ == "__main__":
    main()
