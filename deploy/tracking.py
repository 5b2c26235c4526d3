"""The MLflow tracking server `make up` runs beside the services: jobs log to it over HTTP
with nothing but the MLflow client, locally or from a pod.

Its backend store is a database of its own on the platform's Postgres; it serves artifacts
itself (`--serve-artifacts`), kept under the platform's data directory.
"""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from shared.database_url import connect_arguments, normalize_database_url, sync_database_url
from shared.local_infra import die_with_parent, log_tail

log = logging.getLogger("modelplane.tracking")

# Two workers: one answers while the other is busy uploading an artifact, and each costs about
# 150 MiB, which a laptop can spare twice.
DEFAULT_WORKERS = 2


class TrackingServerError(RuntimeError):
    """The tracking server did not come up; the message carries what it said."""


class TrackingServer:
    """One `mlflow server` process tree, started and stopped with the platform."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        workers: int = DEFAULT_WORKERS,
        log_dir: Path | None = None,
    ) -> None:
        platform_database = make_url(normalize_database_url(database_url))
        self.database = f"{platform_database.database}_mlflow"
        self.database_url = platform_database.set(database=self.database).render_as_string(
            hide_password=False
        )
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.workers = workers
        self.log_path = (log_dir or data_dir) / "mlflow.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, timeout: float = 120.0) -> None:
        await self._ensure_database()
        artifacts = self.data_dir / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            sync_database_url(self.database_url),
            "--serve-artifacts",
            "--artifacts-destination",
            str(artifacts.resolve()),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        # MLflow 3's GenAI job runner polls without pause (a quarter of a core per consumer);
        # nothing of ours uses it.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                # Its own process group: stop() ends mlflow, its server and every worker.
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - see die_with_parent
            )
        log.info("started mlflow server (pid %d) on %s", self.process.pid, self.url)
        await self._wait_until_healthy(timeout)

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def output_tail(self) -> str:
        return log_tail(self.log_path)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, SIGKILL to what is left after `timeout` seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, timeout)
        except subprocess.TimeoutExpired:
            pass
        # Workers outlive their master for a moment; the group goes down whole.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, timeout)

    async def _ensure_database(self) -> None:
        try:
            await self._create_database_if_missing()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise TrackingServerError(
                f"the MLflow server's database {self.database} could not be made: {error}"
            ) from None

    async def _create_database_if_missing(self) -> None:
        arguments = connect_arguments(self.database_url)
        try:
            conn = await asyncpg.connect(**arguments)
        except asyncpg.InvalidCatalogNameError:
            admin = await asyncpg.connect(**{**arguments, "database": "postgres"})
            try:
                await admin.execute(f'CREATE DATABASE "{self.database}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # made meanwhile by another platform on the same server
            finally:
                await admin.close()
        else:
            await conn.close()

    async def _wait_until_healthy(self, timeout: float) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise TrackingServerError(
                        f"mlflow server exited with code {self.process.returncode}:\n"
                        f"{self.output_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise TrackingServerError(
                        f"mlflow server not healthy at {self.url} after {timeout:.0f} s:\n"
                        f"{self.output_tail()}"
                    )
                await asyncio.sleep(0.5)
