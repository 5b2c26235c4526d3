import sys
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest

from services.jobs.integrations.executor import ExecutionState, JobSpec
from services.jobs.integrations.local import LocalExecutor
from services.jobs.integrations.mlflow_tracking import MlflowTracking

TRAIN = """
import argparse, pathlib
import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
args = parser.parse_args()
for epoch in range(args.epochs):
    mlflow.log_metric("accuracy", 0.5 + 0.2 * epoch, step=epoch)
model = pathlib.Path("model.bin")
model.write_bytes(b"weights")
mlflow.log_artifact(str(model))
print("trained", args.epochs, "epochs")
"""


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> MlflowTracking:
    root = tmp_path_factory.mktemp("mlflow")
    return MlflowTracking(f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts"))


async def test_training_subprocess_logs_to_the_run_it_is_given(tracking, tmp_path, wait_finished):
    run_id = await tracking.create_run(
        "sentiment", "job-1", params={"epochs": 3}, tags={"modelplane.job_id": "job-1"}
    )
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    executor = LocalExecutor(tmp_path / "state")
    spec = JobSpec(
        job_id=uuid.uuid4(),
        name="train",
        command=[sys.executable, str(script)],
        working_dir=str(tmp_path),
        env=tracking.env_for_run(run_id),
        parameters={"epochs": 3},
    )

    # A sqlite store: the job opens it with SQLAlchemy, minutes on a loaded machine.
    status = await wait_finished(executor, await executor.submit(spec), timeout=240)
    assert status.state == ExecutionState.SUCCEEDED, [
        line async for line in executor.logs(str(spec.job_id))
    ]
    await tracking.finish(run_id, "FINISHED")

    run = await tracking.read_run(run_id)
    assert run.metrics == {"accuracy": pytest.approx(0.9)}  # the latest of 0.5, 0.7, 0.9
    assert run.params == {"epochs": "3"}
    assert run.status == "FINISHED"
    model = Path(urlparse(run.artifact_uri).path) / "model.bin"
    assert model.read_bytes() == b"weights"


async def test_runs_share_their_experiment_and_failed_runs_say_so(tracking):
    first = await tracking.create_run("ranking", "a")
    second = await tracking.create_run("ranking", "b")

    await tracking.finish(second, "FAILED")

    assert (await tracking.read_run(first)).status == "RUNNING"
    assert (await tracking.read_run(second)).status == "FAILED"
    first_root = (await tracking.read_run(first)).artifact_uri.rsplit("/", 2)[0]
    assert first_root == (await tracking.read_run(second)).artifact_uri.rsplit("/", 2)[0]
    with pytest.raises(ValueError):
        await tracking.finish(first, "RUNNING")


async def test_env_for_run_names_the_store_and_the_run(tracking):
    assert tracking.env_for_run("abc") == {
        "MLFLOW_TRACKING_URI": tracking.tracking_uri,
        "MLFLOW_RUN_ID": "abc",
    }


async def test_a_first_attempt_creates_without_searching_and_a_retry_finds_its_run(tracking):
    tags = {"modelplane.job_id": f"job-{uuid.uuid4()}"}
    params = {"epochs": 3, "lr": 0.1}
    first = await tracking.find_or_create_run(
        "handoff",
        "a",
        params=params,
        tags=tags,
        identified_by="modelplane.job_id",
        first_attempt=True,
    )
    again = await tracking.find_or_create_run(
        "handoff", "a", params=params, tags=tags, identified_by="modelplane.job_id"
    )
    assert again == first
    assert (await tracking.read_run(first)).params == {"epochs": "3", "lr": "0.1"}
