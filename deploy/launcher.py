"""`make up`: the whole platform on one machine, and the same `Platform` for end-to-end tests
and benchmarks.

Postgres and NATS are the ones named by `MODELPLANE_DATABASE_URL` / `MODELPLANE_NATS_URL`, else
embedded servers whose data persists under `.modelplane/`. Every service in the table
(`shared.service_table`) runs as its own processes (`python -m services.<name>`, one a replica),
exactly as in its own container, and is restarted with back-off when it dies. An MLflow
tracking server runs beside them unless `MODELPLANE_MLFLOW_TRACKING_URI` names one.
"""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self
from urllib.parse import unquote

import httpx
import nats
from sqlalchemy.engine import make_url

from deploy.tracking import DEFAULT_WORKERS, TrackingServer, TrackingServerError
from services.serving.integrations.ray_head import LocalRayHead
from shared.database_url import DatabaseUrlError, check_database_answers, normalize_database_url
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
from shared.service_table import (
    SERVICES,
    TABLE_VARIABLE,
    ServiceSpec,
    backends,
    by_name,
    current_table,
    dump_table,
    format_urls,
    start_groups,
)

log = logging.getLogger("modelplane.launcher")

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".modelplane"
EMBEDDED_DATABASE = "modelplane"
GATEWAY = "gateway"
TRACKING_URI_VARIABLE = "MODELPLANE_MLFLOW_TRACKING_URI"
# A Ray cluster of the user's (its dashboard): `make up` then starts no Ray head of its own.
RAY_DASHBOARD_VARIABLE = "MODELPLANE_RAY_DASHBOARD_URL"


class PlatformError(RuntimeError):
    """The platform did not come up; the message carries what its processes said."""


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off between restarts of a service that died: doubling from `first` to `longest`,
    back to `first` once it has run `healthy_after` seconds."""

    first: float = 0.5
    longest: float = 30.0
    healthy_after: float = 30.0


@dataclass
class Replica:
    """One process of a service, on a port of its own that it keeps across restarts."""

    spec: ServiceSpec
    index: int
    port: int
    url: str
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_delay: float = 0.0
    restarting: asyncio.Task | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """`registry`, then `registry-2`, ...: its log file's name and its key in `pids`."""
        return self.spec.name if self.index == 0 else f"{self.spec.name}-{self.index + 1}"

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def output_tail(self) -> str:
        if self.log_path is None:
            return "(its output went to the terminal, above)"
        return log_tail(self.log_path)


class Platform:
    """Postgres, NATS, the MLflow tracking server and every service of the table, started and
    stopped together.

    Ports default to free ones (tests run several platforms); `ports` fixes a service's first
    replica's, and `replicas` how many processes a service runs (else its
    `MODELPLANE_<NAME>_REPLICAS`). `from_environment()` gives `make up`'s choices (gateway on
    8000). `log_dir=None` sends the services' output to this terminal, else to
    `<log_dir>/<replica>.log`. `tracking_uri` names an MLflow server to use instead of
    starting one; `start_tracking=False` runs without any.
    """

    def __init__(
        self,
        *,
        table: Iterable[ServiceSpec] = SERVICES,
        database_url: str | None = None,
        nats_url: str | None = None,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        replicas: Mapping[str, int] | None = None,
        admin_token: str | None = None,
        state_dir: Path = STATE_DIR,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 120.0,
        tracking_uri: str | None = None,
        start_tracking: bool = True,
        tracking_port: int | None = None,
        tracking_workers: int = DEFAULT_WORKERS,
        tracking_timeout: float = 300.0,
        restart: RestartPolicy = RestartPolicy(),
        start_ray: bool = False,
    ) -> None:
        self.table = tuple(table)
        self.database_url = database_url
        self.nats_url = nats_url
        self.host = host
        self.admin_token = admin_token
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.tracking_uri = tracking_uri
        self.restart = restart
        self.replicas: dict[str, list[Replica]] = {}
        first_ports = dict(ports or {})
        counts = dict(replicas or {})
        for spec in self.table:
            count = counts.get(spec.name) or spec.replicas()
            self.replicas[spec.name] = [
                self._replica(spec, i, first_ports.get(spec.name) if i == 0 else None)
                for i in range(count)
            ]
        self.tracking: TrackingServer | None = None
        self._start_tracking = start_tracking and tracking_uri is None
        self._tracking_port = tracking_port
        self._tracking_workers = tracking_workers
        # Its first start creates its tables, then each worker imports all of MLflow: minutes
        # on a busy two-core machine.
        self.tracking_timeout = tracking_timeout
        self._embedded_postgres: EmbeddedPostgres | None = None
        self._embedded_nats: EmbeddedNats | None = None
        # Ray Serve's local head, for the serving service: started beside the platform, in the
        # background, since it takes a minute and only deployments on Ray Serve need it.
        self.ray: LocalRayHead | None = None
        if start_ray and "serving" in self.replicas:
            self.ray = LocalRayHead(
                temp_dir=Path(tempfile.gettempdir()) / f"modelplane-ray-{os.getpid()}"
            )
        self._ray_start: asyncio.Task | None = None
        self._env: dict[str, str] = {}
        self._supervisor: asyncio.Task | None = None
        self._infra_restarts: dict[str, asyncio.Task] = {}
        self._stopping = False

    @classmethod
    def from_environment(cls) -> Self:
        """`make up`: the gateway on its table port, others where their variables say or free."""
        table = current_table()
        ports: dict[str, int] = {}
        for spec in table:
            if value := os.environ.get(spec.port_variable):
                ports[spec.name] = int(value)
            elif spec.name == GATEWAY:
                ports[spec.name] = spec.default_port
        return cls(
            table=table,
            database_url=os.environ.get("MODELPLANE_DATABASE_URL") or None,
            nats_url=os.environ.get("MODELPLANE_NATS_URL") or None,
            host=os.environ.get(by_name()[GATEWAY].host_variable, "127.0.0.1"),
            ports=ports,
            admin_token=os.environ.get("MODELPLANE_ADMIN_TOKEN") or None,
            tracking_uri=os.environ.get(TRACKING_URI_VARIABLE) or None,
            tracking_workers=int(os.environ.get("MODELPLANE_MLFLOW_WORKERS") or DEFAULT_WORKERS),
            start_ray=not os.environ.get(RAY_DASHBOARD_VARIABLE),
        )

    # What callers read ---------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return self.service_url(GATEWAY)

    def service_url(self, name: str) -> str:
        """The first replica's base URL."""
        return self.replicas[name][0].url

    def service_urls(self, name: str) -> list[str]:
        return [replica.url for replica in self.replicas[name]]

    @property
    def pids(self) -> dict[str, int]:
        """Replica label -> pid of its process, for memory and CPU measurement."""
        return {
            replica.label: replica.process.pid
            for replica in self.all_replicas()
            if replica.process is not None
        }

    @property
    def infra_pids(self) -> dict[str, int]:
        """Pids of the embedded Postgres, nats-server and MLflow server this platform started."""
        pids: dict[str, int] = {}
        if self._embedded_postgres is not None and self._embedded_postgres.pid is not None:
            pids["postgres"] = self._embedded_postgres.pid
        if self._embedded_nats is not None:
            pids["nats"] = self._embedded_nats.pid
        if self.tracking is not None and self.tracking.pid is not None:
            pids["mlflow"] = self.tracking.pid
        return pids

    def restarts(self, name: str) -> int:
        """How often the supervisor restarted the service's processes since start."""
        return sum(replica.restarts for replica in self.replicas[name])

    def all_replicas(self) -> list[Replica]:
        """Every process of every service, in table order."""
        return [replica for group in self.replicas.values() for replica in group]

    def _replica(self, spec: ServiceSpec, index: int, port: int | None) -> Replica:
        port = port or free_port(self.host)
        # A wildcard bind address is not something a client can connect to.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return Replica(spec, index, port, f"http://{host}:{port}")

    # Start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        try:
            await self._start_infrastructure()
            self._check_ports_free()
            # The tracking server takes longest to start; the services start meanwhile.
            tracking = asyncio.create_task(self._start_tracking_server(self._plan_tracking()))
            try:
                self._env = self._child_env()
                for group in start_groups(self.table):
                    replicas = [r for spec in group for r in self.replicas[spec.name]]
                    for replica in replicas:
                        self._spawn(replica)
                    await self._wait_all_ready(replicas)
                if self.admin_token is None and GATEWAY in self.replicas:
                    self.admin_token = await self._create_admin_token(self._env)
                await tracking
                if self.ray is not None:
                    self._ray_start = asyncio.create_task(self._start_ray_head(self.ray))
            except BaseException:
                tracking.cancel()
                with contextlib.suppress(BaseException):
                    await tracking
                raise
        except BaseException:
            await self.stop()
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name="platform-supervisor")

    async def stop(self) -> None:
        """Later start groups first (no request reaches a stopped backend), then the servers."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for replica in self.all_replicas():
            if replica.restarting is not None:
                replica.restarting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replica.restarting
                replica.restarting = None
        for restarting in self._infra_restarts.values():
            restarting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restarting
        self._infra_restarts.clear()
        for group in reversed(start_groups(self.table)):
            replicas = [replica for spec in group for replica in self.replicas[spec.name]]
            await asyncio.gather(*map(self._stop_replica, replicas))
        if self._ray_start is not None:
            self._ray_start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ray_start
            self._ray_start = None
        if self.ray is not None:
            await asyncio.to_thread(self.ray.stop)
        if self.tracking is not None:
            await self.tracking.stop()
            self.tracking = None
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

    async def wait_until_ready(self, name: str, timeout: float | None = None) -> None:
        """Every replica of the service answers its readiness path (after a restart, say)."""
        await asyncio.wait_for(
            asyncio.gather(*(self._poll_ready(r) for r in self.replicas[name])),
            timeout or self.ready_timeout,
        )

    # Steps ---------------------------------------------------------------------------------

    async def _start_infrastructure(self) -> None:
        if self.database_url is not None:
            self.database_url = normalize_database_url(self.database_url)
            await check_database_answers(self.database_url)
        if self.nats_url is not None:
            await _check_nats_answers(self.nats_url)
        else:
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
        for replica in self.all_replicas():
            if tcp_answers(self.host, replica.port):
                variable = replica.spec.port_variable
                raise PlatformError(
                    f"port {replica.port} for the {replica.label} is in use; set {variable}"
                )

    def _plan_tracking(self) -> TrackingServer | None:
        """The server to start, if any; its URL is known (for the services' env) before."""
        if not self._start_tracking:
            return None
        assert self.database_url is not None
        self.tracking = TrackingServer(
            self.database_url,
            self.state_dir / "mlflow",
            self._tracking_port or free_port(self.host),
            host=self.host,
            workers=self._tracking_workers,
            log_dir=self.log_dir,
        )
        self.tracking_uri = self.tracking.url
        return self.tracking

    async def _start_tracking_server(self, tracking: TrackingServer | None) -> None:
        if tracking is None:
            return
        try:
            await tracking.start(timeout=self.tracking_timeout)
        except TrackingServerError as error:
            raise PlatformError(str(error)) from None

    async def _start_ray_head(self, ray: LocalRayHead) -> None:
        """Ray's head, logged when its Serve API answers; a head that does not start leaves
        the platform up, with deployments on Ray Serve degraded until one answers."""
        try:
            await asyncio.to_thread(ray.start)
        except Exception as error:  # noqa: BLE001 - said once, the platform goes on
            log.warning("the Ray head did not start (%s); deployments on Ray Serve wait", error)
            return
        log.info("Ray Serve at %s (dashboard %s)", ray.proxy_url, ray.dashboard_url)

    def _child_env(self) -> dict[str, str]:
        assert self.database_url is not None and self.nats_url is not None
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",  # log lines reach the terminal or file as they happen
            "MODELPLANE_DATABASE_URL": self.database_url,
            "MODELPLANE_NATS_URL": self.nats_url,
        }
        for spec in backends(self.table):
            env[spec.url_variable] = format_urls(self.service_urls(spec.name))
        if self.table != SERVICES:
            env[TABLE_VARIABLE] = dump_table(self.table)
        if GATEWAY in self.replicas:
            # The services ask the gateway whether a project exists (shared/projects.py).
            env["MODELPLANE_GATEWAY_URL"] = self.gateway_url
        if self.admin_token is not None:
            env["MODELPLANE_ADMIN_TOKEN"] = self.admin_token
        if self.tracking_uri is not None:
            env[TRACKING_URI_VARIABLE] = self.tracking_uri
        if self.ray is not None:
            env[RAY_DASHBOARD_VARIABLE] = self.ray.dashboard_url
            env["MODELPLANE_RAY_SERVE_URL"] = self.ray.proxy_url
        # Local jobs' directories live with the platform's state.
        env.setdefault("MODELPLANE_JOBS_STATE_DIR", str(self.state_dir / "jobs"))
        env.setdefault("MODELPLANE_DATASETS_DATA_DIR", str(self.state_dir / "datasets"))
        env.update(self.extra_env)
        return env

    def _spawn(self, replica: Replica) -> None:
        spec = replica.spec
        env = {
            **self._env,
            spec.host_variable: self.host,
            spec.port_variable: str(replica.port),
        }
        if self.log_dir is not None and replica.log_file is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            replica.log_path = self.log_dir / f"{replica.label}.log"
            replica.log_file = replica.log_path.open("ab")
        replica.process = subprocess.Popen(
            [sys.executable, "-m", spec.module],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=replica.log_file,
            stderr=subprocess.STDOUT if replica.log_file is not None else None,
            # Own session: Ctrl-C reaches only the launcher, which stops services in order.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - see die_with_parent
        )
        replica.started_at = time.monotonic()
        log.info("started %s (pid %d) on %s", replica.label, replica.process.pid, replica.url)

    async def _stop_replica(self, replica: Replica) -> None:
        if replica.process is not None:
            await asyncio.to_thread(stop_process, replica.process)
        if replica.log_file is not None:
            replica.log_file.close()
            replica.log_file = None

    async def _wait_all_ready(self, replicas: list[Replica]) -> None:
        """The first failure fails the start; the other waits end with it."""
        try:
            async with asyncio.TaskGroup() as group:
                for replica in replicas:
                    group.create_task(self._wait_until_ready(replica))
        except* PlatformError as errors:
            raise errors.exceptions[0] from None

    async def _wait_until_ready(self, replica: Replica) -> None:
        """While starting: a process that exits or stays unready fails the start, with its tail."""
        try:
            await asyncio.wait_for(self._poll_ready(replica, fail_on_exit=True), self.ready_timeout)
        except TimeoutError:
            raise PlatformError(
                f"{replica.label} not ready at {replica.url}{replica.spec.readiness_path} after "
                f"{self.ready_timeout:.0f} s:\n{replica.output_tail()}"
            ) from None

    async def _poll_ready(self, replica: Replica, *, fail_on_exit: bool = False) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if fail_on_exit and (exited := self._exited_replica()) is not None:
                    code = exited.process.returncode if exited.process else None
                    raise PlatformError(
                        f"{exited.label} exited with code {code}:\n{exited.output_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.get(f"{replica.url}{replica.spec.readiness_path}")
                    if response.status_code == 200:
                        return
                await asyncio.sleep(0.2)

    def _exited_replica(self) -> Replica | None:
        for replica in self.all_replicas():
            if replica.exited():
                return replica
        return None

    async def _create_admin_token(self, env: dict[str, str]) -> str:
        command = [
            sys.executable,
            "-m",
            "services.gateway",
            "create-token",
            "--subject",
            "admin",
            "--role",
            "admin",
        ]
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

    async def _supervise(self) -> None:
        """Restart each process that dies, with back-off; the others go on serving."""
        while not self._stopping:
            for replica in self.all_replicas():
                if replica.exited() and replica.restarting is None:
                    replica.restarting = asyncio.create_task(self._restart(replica))
            nats_server, tracking = self._embedded_nats, self.tracking
            if nats_server is not None and nats_server.process.poll() is not None:
                self._restart_infrastructure("nats", self._restart_embedded_nats(nats_server))
            if tracking is not None and tracking.exited():
                self._restart_infrastructure("mlflow", self._restart_tracking(tracking))
            await asyncio.sleep(0.2)

    def _restart_infrastructure(self, name: str, restart: Coroutine[None, None, None]) -> None:
        """One restart at a time per server; a failed one is tried again after the back-off."""
        if (running := self._infra_restarts.get(name)) is not None and not running.done():
            restart.close()
            return

        async def attempt() -> None:
            try:
                await restart
            except Exception as error:  # noqa: BLE001 - logged; the next round tries again
                log.error("%s did not come back: %s", name, error)
                await asyncio.sleep(self.restart.longest)

        self._infra_restarts[name] = asyncio.create_task(attempt())

    async def _restart_embedded_nats(self, server: EmbeddedNats) -> None:
        log.warning("embedded NATS exited with code %s; restarting", server.process.returncode)
        # Started from the event loop's thread, as at start: it dies with that thread.
        self._embedded_nats = start_embedded_nats(self.state_dir / "nats")
        if self._embedded_nats.port != server.port:
            log.error(
                "embedded NATS came back on port %d, its old port %d taken; services still "
                "use the old one",
                self._embedded_nats.port,
                server.port,
            )

    async def _restart_tracking(self, tracking: TrackingServer) -> None:
        code = tracking.process.returncode if tracking.process is not None else None
        log.warning("mlflow server exited with code %s; restarting", code)
        await tracking.stop()  # what is left of its process group
        await tracking.start(timeout=self.tracking_timeout)

    async def _restart(self, replica: Replica) -> None:
        assert replica.process is not None
        ran = time.monotonic() - replica.started_at
        policy = self.restart
        if ran >= policy.healthy_after or replica.next_delay == 0:
            replica.next_delay = policy.first
        delay = replica.next_delay
        replica.next_delay = min(delay * 2, policy.longest)
        log.warning(
            "%s exited with code %s after %.1f s; restarting in %.1f s",
            replica.label,
            replica.process.returncode,
            ran,
            delay,
        )
        await asyncio.sleep(delay)
        if self._stopping:
            return
        replica.restarts += 1
        self._spawn(replica)
        replica.restarting = None


async def _check_nats_answers(url: str, variable: str = "MODELPLANE_NATS_URL") -> None:
    async def quiet(_error: Exception) -> None:
        """The one line below says it; nats-py's default would log each attempt's traceback."""

    try:
        client = await asyncio.wait_for(
            nats.connect(
                url,
                connect_timeout=5,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=quiet,
            ),
            timeout=20,
        )
    except Exception as error:  # noqa: BLE001 - any failure to connect means the same to a user
        raise PlatformError(f"{variable}: no NATS server answers at {url} ({error})") from None
    await client.close()


def welcome(platform: Platform) -> str:
    lines = ["", "Modelplane is up."]
    if GATEWAY in platform.replicas:
        url = platform.gateway_url
        lines += [f"  API                {url}", f"  OpenAPI            {url}/api/v1/openapi.json"]
        lines += [f"  API (replica)      {other}" for other in platform.service_urls(GATEWAY)[1:]]
    else:  # a table without the gateway (a test's): where each service answers
        lines += [f"  {r.label:<18} {r.url}" for r in platform.all_replicas()]
    if platform.tracking_uri is not None:
        started = "" if platform.tracking is not None else "  (yours)"
        lines.append(f"  MLflow tracking    {platform.tracking_uri}{started}")
    if platform.ray is not None:
        lines.append(
            f"  Ray dashboard      {platform.ray.dashboard_url}  (starting in the background)"
        )
    # Unquoted: a socket directory reads as the path it is.
    database = unquote(make_url(platform.database_url or "").render_as_string(hide_password=True))
    lines += [
        f"  Admin token        {platform.admin_token}",
        f"  Database           {database}",
        f"  NATS               {platform.nats_url}",
    ]
    if GATEWAY in platform.replicas:
        lines += [
            "",
            "Try:",
            f'  curl -H "Authorization: Bearer {platform.admin_token}" {url}/api/v1/projects',
        ]
    lines += ["", "A service that dies is restarted. Ctrl-C stops everything.", ""]
    return "\n".join(lines)


async def run(platform: Platform) -> int:
    """Start, print how to use it, then run until Ctrl-C / SIGTERM."""
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
        except (PlatformError, DatabaseUrlError) as error:
            log.error("%s", error)
            return 1
        print(welcome(platform), flush=True)
        await waiting
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
    try:
        platform = Platform.from_environment()
    except ValueError as error:  # a replica count or port that is not a number
        log.error("%s", error)
        sys.exit(1)
    sys.exit(asyncio.run(run(platform)))


if __name__ == "__main__":
    main()
