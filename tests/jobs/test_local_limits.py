"""Where a local job runs: its python_env first on PATH, as an unprivileged user when the
service is root, and held to the CPU and memory it asked for."""

import os
import pwd
import shutil
import stat
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from services.jobs.domain import PYTHON_ENV_IGNORED
from services.jobs.integrations.executor import ExecutionState, JobSpec
from services.jobs.integrations.local import LocalExecutor
from tests.jobs.test_jobs import job_body, wait_status

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can run a job as another user")


@pytest.fixture
def open_dir():
    """A folder every user can reach (pytest's own tmp folders are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="modelplane-jobs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fake_env(root: Path) -> Path:
    """A prefix whose bin/python says which environment it is."""
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text('#!/bin/sh\necho "python of $VIRTUAL_ENV"\n')
    python.chmod(0o755)
    return root


def spec(command: list[str], **fields) -> JobSpec:
    return JobSpec(job_id=uuid.uuid4(), name="limits", command=command, **fields)


async def output(executor: LocalExecutor, handle: str) -> list[str]:
    return [line async for line in executor.logs(handle)]


async def test_python_env_puts_its_bin_first_on_the_path(jobs_client, tmp_path):
    env = fake_env(tmp_path / "venv")
    r = await jobs_client.post(
        "/jobs", json=job_body(command=["python", "train.py"], parameters={}, python_env=str(env))
    )
    assert r.status_code == 201, r.text
    assert r.json()["python_env"] == str(env) and r.json()["warnings"] == []
    job = await wait_status(jobs_client, r.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    logs = (await jobs_client.get(f"/jobs/{job['id']}/logs")).text
    assert logs == f"python of {env}\n"


async def test_a_python_env_without_bin_fails_the_job_saying_why(jobs_client, tmp_path):
    r = await jobs_client.post("/jobs", json=job_body(python_env=str(tmp_path / "nothing")))
    job = await wait_status(jobs_client, r.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "failed"
    assert f"python_env {tmp_path / 'nothing'} has no bin/ directory" in job["message"]


async def test_a_relative_python_env_is_refused(jobs_client):
    r = await jobs_client.post("/jobs", json=job_body(python_env="venv"))
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "python_env"]]


async def test_kubernetes_ignores_python_env_and_says_so(jobs_client, jobs_cluster, tmp_path):
    r = await jobs_client.post("/jobs", json=job_body(env="stg", python_env=str(tmp_path)))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["executor"] == "kubernetes"
    assert job["warnings"] == [PYTHON_ENV_IGNORED]
    assert (await jobs_client.get(f"/jobs/{job['id']}")).json()["warnings"] == [PYTHON_ENV_IGNORED]
    [created] = [
        request.body
        for request in jobs_cluster.received("POST", "/jobs")
        if request.body["metadata"]["name"] == f"modelplane-{job['id']}"
    ]
    assert str(tmp_path) not in str(created)
    await jobs_client.post(f"/jobs/{job['id']}/cancel")


async def test_memory_is_a_limit_the_job_cannot_allocate_past(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path)
    allocate = [sys.executable, "-c", "b = bytearray(600 * 2**20); print('allocated')"]

    small = await executor.submit(spec(allocate, memory="256Mi"))
    roomy = await executor.submit(spec(allocate, memory="2Gi"))

    status = await wait_finished(executor, small)
    assert status.state == ExecutionState.FAILED, await output(executor, small)
    assert "MemoryError" in (await output(executor, small))[-1]
    assert (await wait_finished(executor, roomy)).state == ExecutionState.SUCCEEDED
    assert await output(executor, roomy) == ["allocated"]


async def test_cpu_is_the_number_of_cores_the_job_may_run_on(tmp_path, wait_finished):
    executor = LocalExecutor(tmp_path)
    cores = len(os.sched_getaffinity(0))
    count = [sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"]

    handles = {cpu: await executor.submit(spec(count, cpu=cpu)) for cpu in ("500m", "1", "64")}
    unlimited = await executor.submit(spec(count))

    for handle in [*handles.values(), unlimited]:
        assert (await wait_finished(executor, handle)).state == ExecutionState.SUCCEEDED
    assert await output(executor, handles["500m"]) == ["1"]
    assert await output(executor, handles["1"]) == ["1"]
    assert await output(executor, handles["64"]) == [str(cores)]  # no more than there are
    assert await output(executor, unlimited) == [str(cores)]


@as_root
async def test_a_root_service_runs_jobs_as_the_unprivileged_user(open_dir, wait_finished):
    executor = LocalExecutor(open_dir / "runs", run_as="nobody")
    script = "id -un; ulimit -d; echo $HOME; touch written-by-the-job"
    job = spec(["/bin/sh", "-c", script], memory="256Mi")

    handle = await executor.submit(job)

    assert (await wait_finished(executor, handle)).state == ExecutionState.SUCCEEDED
    job_dir = open_dir / "runs" / handle
    assert await output(executor, handle) == ["nobody", str(256 * 1024), str(job_dir / "work")]
    assert (job_dir / "work" / "written-by-the-job").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    # Its bookkeeping is out of the job's reach: it cannot forge its end or its pid.
    assert job_dir.stat().st_uid == 0 and not job_dir.stat().st_mode & 0o022
    # The runner (root) still records how the job ended, for a restarted service to read.
    assert (job_dir / "exit_code").read_text() == "0"


@as_root
async def test_a_job_dir_the_user_cannot_reach_is_refused_naming_the_folder(open_dir):
    closed = open_dir / "closed"
    closed.mkdir()
    closed.chmod(stat.S_IRWXU)
    executor = LocalExecutor(closed / "runs", run_as="nobody")

    with pytest.raises(PermissionError, match=f"nobody, who cannot reach {closed}:"):
        await executor.submit(spec(["/bin/true"]))
