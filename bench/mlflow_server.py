"""An MLflow tracking server (model registry included) on its own database in the same Postgres."""

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx
import psutil

from shared.database_url import sync_database_url
from shared.local_infra import create_database, die_with_parent, drop_database, free_port, log_tail

log = logging.getLogger("bench.mlflow")


class MlflowServer:
    def __init__(self, server_url: str, workers: int = 4, log_dir: Path | None = None) -> None:
        self.server_url = server_url
        self.workers = workers
        self.database = f"mlflow_bench_{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self._artifacts = tempfile.mkdtemp(prefix="mlflow_bench_artifacts_")
        self._log_path: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self, timeout: float = 180.0) -> None:
        db_url = await create_database(self.server_url, self.database)
        backend = sync_database_url(db_url)
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [
            str(mlflow),
            "server",
            "--backend-store-uri",
            backend,
            "--default-artifact-root",
            self._artifacts,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--gunicorn-opts",
            f"--workers {self.workers}",
        ]
        log_dir = self.log_dir or Path(tempfile.mkdtemp(prefix="mlflow_bench_log_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / "mlflow.log"
        log_file = self._log_path.open("ab")
        # MLflow 3's job execution (GenAI jobs, not the registry) starts seven huey consumers
        # that poll without pause: idle, they took 28 % of a core each, about both cores in
        # all, from every process measured on this machine, Modelplane's included.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        # A Popen, started once before any load: tree() reads it synchronously.
        self.process = subprocess.Popen(  # noqa: ASYNC220
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - see die_with_parent
        )
        log_file.close()
        log.info(
            "mlflow server (pid %d) on %s, database %s", self.process.pid, self.url, self.database
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"mlflow server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                if loop.time() > deadline:
                    raise RuntimeError(
                        f"mlflow server not healthy after {timeout:.0f} s:\n{self.log_tail()}"
                    )
                await asyncio.sleep(0.5)

    def log_tail(self) -> str:
        return log_tail(self._log_path) if self._log_path else ""

    def tree(self) -> list[psutil.Process]:
        if self.process is None or self.process.poll() is not None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    async def stop(self) -> None:
        """SIGTERM the whole tree (mlflow -> gunicorn master -> workers), then SIGKILL stragglers."""
        procs = self.tree()
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = await asyncio.to_thread(psutil.wait_procs, procs, 10)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if self.process is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.process.wait, 5)
        with contextlib.suppress(Exception):
            await drop_database(self.server_url, self.database)
        shutil.rmtree(self._artifacts, ignore_errors=True)
