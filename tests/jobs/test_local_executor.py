import asyncio
import os
import signal
import sys
import textwrap
import uuid
from pathlib import Path

import psutil
import pytest

from services.jobs.integrations.executor import ExecutionState, JobSpec, UnknownHandle
from services.jobs.integrations.local import LocalExecutor


def python_job(script: str, tmp_path: Path, **fields) -> JobSpec:
    path = tmp_path / f"job-{uuid.uuid4().hex[:8]}.py"
    path.write_text(textwrap.dedent(script))
    return JobSpec(
        job_id=uuid.uuid4(), name=path.stem, command=[sys.executable, str(path)], **fields
    )


async def collect(executor: LocalExecutor, handle: str) -> list[str]:
    return [line async for line in executor.logs(handle)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_for_file(path: Path, timeout: float = 10.0) -> str:
    for _ in range(int(timeout / 0.05)):
        if path.exists() and path.read_text():
            return path.read_text()
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never written")


async def test_script_succeeds_with_parameters_env_and_log_followed(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    spec = python_job(
        """
        import os, sys, time
        print("args", sys.argv[1:])
        print("greeting", os.environ["GREETING"])
        time.sleep(0.3)
        print("done", end="")
        """,
        tmp_path,
        env={"GREETING": "hi"},
        parameters={"epochs": 2, "lr": 0.1, "fast": True},
    )

    handle = await executor.submit(spec)
    lines = await asyncio.wait_for(collect(executor, handle), 20)  # follows until the end

    assert lines == [
        "args ['--epochs', '2', '--lr', '0.1', '--fast', 'true']",
        "greeting hi",
        "done",
    ]
    status = await wait_finished(executor, handle)
    assert (status.state, status.exit_code) == (ExecutionState.SUCCEEDED, 0)
    assert (tmp_path / "state" / str(spec.job_id) / "exit_code").read_text() == "0"


async def test_submitting_twice_runs_the_job_once(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    spec = python_job("print('ran')", tmp_path)

    first = await executor.submit(spec)
    second = await executor.submit(spec)
    await wait_finished(executor, first)

    assert first == second
    assert await collect(executor, first) == ["ran"]


async def test_failing_script_is_failed_with_its_exit_code_and_stderr(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    spec = python_job("import sys; print('boom', file=sys.stderr); sys.exit(3)", tmp_path)

    handle = await executor.submit(spec)
    status = await wait_finished(executor, handle)

    assert (status.state, status.exit_code) == (ExecutionState.FAILED, 3)
    assert await collect(executor, handle) == ["boom"]


async def test_missing_command_fails(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    spec = JobSpec(job_id=uuid.uuid4(), name="nope", command=[str(tmp_path / "no-such-binary")])

    status = await wait_finished(executor, await executor.submit(spec))

    assert (status.state, status.exit_code) == (ExecutionState.FAILED, 127)


@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["sigterm", "needs-sigkill"])
async def test_cancel_kills_the_process_tree(tmp_path, wait_finished, ignores_sigterm):
    executor = LocalExecutor(tmp_path / "state", grace_seconds=0.5)
    pids_file = tmp_path / "pids"
    spec = python_job(
        f"""
        import os, signal, subprocess, sys, time
        if {ignores_sigterm}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open({str(pids_file)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(60)
        """,
        tmp_path,
    )
    handle = await executor.submit(spec)
    job_pid, grandchild_pid = map(int, (await wait_for_file(pids_file)).split())
    assert (await executor.status(handle)).state == ExecutionState.RUNNING

    await asyncio.wait_for(executor.cancel(handle), 10)

    status = await wait_finished(executor, handle)
    assert status.state == ExecutionState.KILLED
    assert gone(job_pid) and gone(grandchild_pid)


async def test_cancel_of_finished_job_keeps_its_state(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    handle = await executor.submit(python_job("pass", tmp_path))
    await wait_finished(executor, handle)

    await executor.cancel(handle)

    assert (await executor.status(handle)).state == ExecutionState.SUCCEEDED


async def test_deadline_fails_the_job(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path / "state")
    spec = python_job("import time; time.sleep(60)", tmp_path, deadline_seconds=1)

    status = await wait_finished(executor, await executor.submit(spec))

    assert status.state == ExecutionState.FAILED
    assert status.message == "deadline exceeded"


async def test_new_executor_learns_the_end_of_a_job_that_finished_while_it_was_down(
    tmp_path, wait_finished
):
    state = tmp_path / "state"
    started = tmp_path / "started"
    spec = python_job(
        f"""
        import sys, time
        open({str(started)!r}, "w").write("yes")
        time.sleep(0.5)
        print("trained")
        sys.exit(4)
        """,
        tmp_path,
    )
    handle = await LocalExecutor(state).submit(spec)
    await wait_for_file(started)
    # The service is down: nobody asks about the job until it has ended.
    exit_code = state / str(spec.job_id) / "exit_code"
    await wait_for_file(exit_code)

    restarted = LocalExecutor(state)
    status = await restarted.status(handle)

    assert (status.state, status.exit_code) == (ExecutionState.FAILED, 4)
    assert await collect(restarted, handle) == ["trained"]


async def test_new_executor_sees_a_runner_that_died_without_an_exit_code_as_failed(
    tmp_path, wait_finished
):
    state = tmp_path / "state"
    spec = python_job("import time; time.sleep(60)", tmp_path)
    handle = await LocalExecutor(state).submit(spec)
    runner_pid = int((state / handle / "pid").read_text().split()[0])
    assert (await LocalExecutor(state).status(handle)).state == ExecutionState.RUNNING

    os.killpg(runner_pid, signal.SIGKILL)  # the machine lost the processes, not just the service
    status = await wait_finished(LocalExecutor(state), handle)

    assert status.state == ExecutionState.FAILED
    assert status.exit_code is None


async def test_unknown_handle_is_reported(tmp_path):
    executor = LocalExecutor(tmp_path / "state")

    with pytest.raises(UnknownHandle):
        await executor.status(str(uuid.uuid4()))
    with pytest.raises(UnknownHandle):
        await executor.status("../../etc")
