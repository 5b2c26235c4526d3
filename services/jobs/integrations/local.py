"""LocalExecutor: runs a job as a subprocess on this machine (the local default backend).

Each job lives in `<state_dir>/<job_id>/`: `output.log` (stdout and stderr), `pid` (the
runner's pid and start time), `exit_code` (written by local_runner.py when the command ends),
`cancelled` and `deadline_exceeded` markers, and `work/` for a job run as another user. Status
is read from these files alone, so a new executor (after the jobs service restarts) knows what
became of jobs started by the old one.

A job runs with the service's environment (its `python_env`'s bin/ first on PATH), as `run_as`
when given (the service running as root), and with the CPU and memory it asked for as limits:
CPU affinity to that many cores, rounded up, and RLIMIT_DATA of its memory.
"""

import asyncio
import json
import logging
import math
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import psutil

from services.jobs.integrations import local_runner
from services.jobs.integrations.executor import (
    ExecutionState,
    ExecutionStatus,
    JobSpec,
    UnknownHandle,
    parameter_args,
)
from shared.events.jobs import parse_positive_quantity

logger = logging.getLogger(__name__)

LOG_FILE = "output.log"
PID_FILE = "pid"
CANCELLED_FILE = "cancelled"
SPEC_FILE = "spec.json"
WORK_DIR = "work"  # the working directory of a job run as another user
RUNNER_PATH = Path(local_runner.__file__).resolve()


class LocalExecutor:
    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        grace_seconds: float = 10.0,
        poll_seconds: float = 0.2,
        inherit_env: bool = True,
        run_as: str | None = None,
    ) -> None:
        """`run_as`: the user jobs run as (the service must be root to switch); None: its own."""
        self.run_as = run_as
        self.state_dir = Path(state_dir).resolve()
        self.grace_seconds = grace_seconds
        self.poll_seconds = poll_seconds
        self.inherit_env = inherit_env
        # Runners started by this instance, until they are reaped.
        self._runners: dict[str, asyncio.subprocess.Process] = {}
        self._reapers: set[asyncio.Task[None]] = set()

    async def submit(self, spec: JobSpec) -> str:
        handle = str(spec.job_id)
        job_dir = self.state_dir / handle
        if (job_dir / PID_FILE).exists():
            return handle
        job_dir.mkdir(parents=True, exist_ok=True)
        argv = [*spec.command, *parameter_args(spec.parameters)]
        (job_dir / SPEC_FILE).write_text(json.dumps({"name": spec.name, "argv": argv}))
        env = {**os.environ, **spec.env} if self.inherit_env else dict(spec.env)
        env.setdefault(
            "PYTHONUNBUFFERED", "1"
        )  # so followed logs show Python output as it is printed
        if spec.python_env:
            env.update(python_env_variables(spec.python_env, env.get("PATH", os.defpath)))
        runner_args = ["--job-dir", str(job_dir), *limit_args(spec, os.sched_getaffinity(0))]
        if spec.deadline_seconds:
            runner_args += ["--deadline", str(spec.deadline_seconds)]
        workdir = job_dir
        if self.run_as:
            user = _user(self.run_as)
            _check_reachable(job_dir, user)
            # A folder of its own: the job dir's pid and exit_code files stay out of its reach.
            workdir = job_dir / WORK_DIR
            workdir.mkdir(exist_ok=True)
            os.chown(workdir, user.pw_uid, user.pw_gid)
            env.update(HOME=str(workdir), USER=user.pw_name, LOGNAME=user.pw_name)
            runner_args += ["--user", user.pw_name]
        with await asyncio.to_thread(open, job_dir / LOG_FILE, "ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                str(RUNNER_PATH),
                *runner_args,
                "--",
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.working_dir or workdir,
                env=env,
                start_new_session=True,  # its own process group: cancel signals the whole tree
            )
        self._runners[handle] = process
        reaper = asyncio.create_task(self._reap(handle, process))
        self._reapers.add(reaper)
        reaper.add_done_callback(self._reapers.discard)
        local_runner.write_atomically(
            job_dir / PID_FILE, f"{process.pid} {_create_time(process.pid)}"
        )
        logger.info("local job %s started: pid %s, %s", handle, process.pid, argv)
        return handle

    async def status(self, handle: str) -> ExecutionStatus:
        job_dir = self._job_dir(handle)
        exit_code = _read_exit_code(job_dir)
        if exit_code is None:
            runner = _read_pid(job_dir)
            if runner is None:
                return ExecutionStatus(ExecutionState.PENDING)
            if _running(*runner):
                return ExecutionStatus(ExecutionState.RUNNING)
            # The runner may have written the exit code just before it exited.
            exit_code = _read_exit_code(job_dir)
        if (job_dir / CANCELLED_FILE).exists():
            return ExecutionStatus(ExecutionState.KILLED, exit_code, "cancelled")
        if exit_code is None:
            return ExecutionStatus(
                ExecutionState.FAILED, None, "the job's runner ended without recording an exit code"
            )
        if (job_dir / local_runner.DEADLINE_FILE).exists():
            return ExecutionStatus(ExecutionState.FAILED, exit_code, "deadline exceeded")
        if exit_code == 0:
            return ExecutionStatus(ExecutionState.SUCCEEDED, 0)
        if exit_code < 0:
            name = signal.Signals(-exit_code).name
            return ExecutionStatus(ExecutionState.FAILED, exit_code, f"ended by signal {name}")
        return ExecutionStatus(ExecutionState.FAILED, exit_code, f"exited with code {exit_code}")

    async def logs(self, handle: str) -> AsyncIterator[str]:
        job_dir = self._job_dir(handle)
        partial = b""
        # Reads in a thread: a large log must not hold up the service's other requests.
        with await asyncio.to_thread(open, job_dir / LOG_FILE, "rb") as log:
            while True:
                chunk = await asyncio.to_thread(log.read, 65536)
                if chunk:
                    *lines, partial = (partial + chunk).split(b"\n")
                    for line in lines:
                        yield line.decode(errors="replace")
                    continue
                if (await self.status(handle)).finished:
                    # Output written between the last read and the status check is still there.
                    rest = await asyncio.to_thread(log.read)
                    if not rest:
                        break
                    *lines, partial = (partial + rest).split(b"\n")
                    for line in lines:
                        yield line.decode(errors="replace")
                    continue
                await asyncio.sleep(self.poll_seconds)
        if partial:
            yield partial.decode(errors="replace")

    async def cancel(self, handle: str) -> None:
        job_dir = self._job_dir(handle)
        if (await self.status(handle)).finished:
            return
        (job_dir / CANCELLED_FILE).touch()
        runner = _read_pid(job_dir)
        if runner is None or not _running(*runner):
            return
        pid = runner[0]
        try:
            tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        _signal_group(pid, signal.SIGTERM)
        survivors = await self._wait_gone(tree, self.grace_seconds)
        if survivors:
            logger.warning(
                "local job %s ignored SIGTERM; killing %d processes", handle, len(survivors)
            )
            _signal_group(pid, signal.SIGKILL)
            for process in survivors:  # those that left the group (setsid) too
                try:
                    process.kill()
                except psutil.NoSuchProcess:
                    pass
            await self._wait_gone(survivors, 5.0)
        launched = self._runners.get(handle)
        if launched is not None:
            await launched.wait()

    async def _reap(self, handle: str, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        self._runners.pop(handle, None)

    async def _wait_gone(
        self, processes: list[psutil.Process], timeout: float
    ) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p in processes if _alive(p)]
            if not alive or time.monotonic() >= deadline:
                return alive
            await asyncio.sleep(min(self.poll_seconds, 0.05))

    def _job_dir(self, handle: str) -> Path:
        try:
            job_dir = self.state_dir / str(UUID(handle))
        except ValueError:
            raise UnknownHandle(handle) from None
        if not job_dir.is_dir():
            raise UnknownHandle(handle)
        return job_dir


def python_env_variables(prefix: str, path: str) -> dict[str, str]:
    """A virtualenv's or conda prefix's bin/ first on PATH, and the variables each sets."""
    root = Path(prefix)
    if not (root / "bin").is_dir():
        raise ValueError(f"python_env {prefix} has no bin/ directory")
    variables = {"PATH": f"{root / 'bin'}{os.pathsep}{path}"}
    if (root / "conda-meta").is_dir():
        variables["CONDA_PREFIX"] = prefix
    else:
        variables["VIRTUAL_ENV"] = prefix
    return variables


def limit_args(spec: JobSpec, cores: set[int]) -> list[str]:
    """The runner's arguments that limit the job to the CPU and memory it asked for."""
    args: list[str] = []
    if spec.cpu:
        wanted = min(max(math.ceil(parse_positive_quantity(spec.cpu)), 1), len(cores))
        # Spread jobs over the cores by their id, instead of all on the first ones.
        ordered = sorted(cores)
        start = spec.job_id.int % len(ordered)
        chosen = (ordered[start:] + ordered[:start])[:wanted]
        args += ["--cpus", ",".join(map(str, sorted(chosen)))]
    if spec.memory:
        args += ["--memory-bytes", str(math.ceil(parse_positive_quantity(spec.memory)))]
    return args


def _user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"no user {name!r} on this machine to run local jobs as") from None


def _check_reachable(job_dir: Path, user: pwd.struct_passwd) -> None:
    """Refuse to start a job whose directory its user cannot reach, saying which folder blocks."""
    for folder in reversed(job_dir.parents):
        stat = folder.stat()
        if stat.st_uid == user.pw_uid:
            searchable = 0o100
        else:
            searchable = 0o010 if stat.st_gid == user.pw_gid else 0o001
        if not stat.st_mode & searchable:
            raise PermissionError(
                f"local jobs run as {user.pw_name}, who cannot reach {folder}: make it "
                "searchable (chmod o+x) or choose another MODELPLANE_JOBS_STATE_DIR"
            )


def _create_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return 0.0  # already gone: its exit code file tells the rest


def _read_pid(job_dir: Path) -> tuple[int, float] | None:
    try:
        pid, create_time = (job_dir / PID_FILE).read_text().split()
    except FileNotFoundError:
        return None
    return int(pid), float(create_time)


def _read_exit_code(job_dir: Path) -> int | None:
    try:
        return int((job_dir / local_runner.EXIT_CODE_FILE).read_text())
    except FileNotFoundError:
        return None


def _running(pid: int, create_time: float) -> bool:
    """Whether the runner still runs; the start time guards against a reused pid."""
    try:
        process = psutil.Process(pid)
        same = create_time == 0.0 or abs(process.create_time() - create_time) < 0.01
        return same and _alive(process)
    except psutil.NoSuchProcess:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
