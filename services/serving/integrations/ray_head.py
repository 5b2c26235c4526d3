"""A Ray head with its dashboard on this machine: Ray Serve's local default.

`ray start --head --block` runs in a session of its own; stopping it ends that session's
process group (the head's processes and the workers it started), never any other Ray.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

logger = logging.getLogger(__name__)

# The directory holding the `services` package: Ray's workers import the Serve app from it.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalRayHead:
    """One local Ray head. `num_cpus` is what Ray may schedule, not what it uses while idle."""

    temp_dir: Path
    num_cpus: float = 1
    object_store_bytes: int = 100 * 1024 * 1024
    dashboard_port: int = field(default_factory=free_port)
    serve_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def start(self, timeout: float = 180.0, attempts: int = 2) -> Self:
        """Start the head and wait for its dashboard's Serve API. Ray gives its raylet a fixed
        30 s to register, which a busy machine can miss: a head that exited is started again."""
        for attempt in range(1, attempts + 1):
            process, log = self._launch()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if (
                        httpx.get(
                            f"{self.dashboard_url}/api/serve/applications/", timeout=5
                        ).status_code
                        == 200
                    ):
                        logger.info(
                            "Ray head up: dashboard %s, Serve %s",
                            self.dashboard_url,
                            self.proxy_url,
                        )
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            exited = process.poll()
            self.stop()
            if exited is None:
                raise TimeoutError(
                    f"the Ray dashboard did not answer within {timeout} s; see {log}"
                )
            logger.warning(
                "ray start exited with %s (attempt %d of %d); see %s",
                exited,
                attempt,
                attempts,
                log,
            )
        raise RuntimeError(f"ray start failed {attempts} times; see {log}")

    def _launch(self) -> tuple[subprocess.Popen[bytes], Path]:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        ray = Path(sys.executable).with_name("ray")
        command = [
            str(ray),
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--port={free_port()}",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_bytes}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--temp-dir={self.temp_dir}",
            "--include-log-monitor=false",
        ]
        python_path = os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        )
        # Ray's processes keep their compiled bytecode: each of its dozen starts otherwise
        # compiles its imports anew, which on a busy machine makes the raylet give up on its
        # dashboard agent (a fixed 15 s in Ray 2.58).
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env = {
            **inherited,
            "PYTHONPATH": python_path,
            "RAY_USAGE_STATS_ENABLED": "0",
            # The dashboard starts a process per module, and replicas' workers register: on a
            # busy small machine each may take longer than Ray's defaults (tens of seconds).
            "RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT": "300",
            "RAY_DASHBOARD_STARTUP_TIMEOUT_S": "300",
            "RAY_worker_register_timeout_seconds": "300",
            **self.extra_env,
        }
        path = self.temp_dir / "ray-start.log"
        with open(path, "ab") as log:
            process = self.process = subprocess.Popen(
                command,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=PROJECT_ROOT,
            )
        return process, path

    def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.poll() is not None and not _group_alive(process):
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(process):
                process.poll()
                time.sleep(0.2)
            if not _group_alive(process):
                process.poll()
                return


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True
