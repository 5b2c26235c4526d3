import asyncio
import uuid

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from services.jobs.integrations.executor import ExecutionState, JobSpec
from services.jobs.integrations.kubernetes import KubernetesConfig, KubernetesExecutor
from tests.fakes.kubernetes_api import FakeKubernetes

NAMESPACE = "ml-jobs"
TOKEN = "s3cret-token"


@pytest.fixture
def cluster():
    with FakeKubernetes(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def executor(cluster):
    config = KubernetesConfig(
        namespace=NAMESPACE, host=cluster.url, token=TOKEN, log_poll_seconds=0.05
    )
    executor = KubernetesExecutor(config)
    yield executor
    executor.close()


def gpu_spec(**fields) -> JobSpec:
    values = {
        "job_id": uuid.uuid4(),
        "name": "fine-tune llama",
        "command": ["python", "-m", "train"],
        "image": "registry.example/train:1.2",
        "env": {"WANDB_MODE": "offline"},
        "parameters": {"epochs": 3, "lr": 0.0001},
        "use_gpu": True,
        "gpus": 4,
        "gpu_type": "NVIDIA-A100-SXM4-80GB",
        "cpu": "8",
        "memory": "64Gi",
        "deadline_seconds": 3600,
        "backoff_limit": 2,
    }
    return JobSpec(**{**values, **fields})


def job_name(handle: str) -> str:
    return handle.split("/", 1)[1]


async def test_the_job_the_cluster_receives_asks_for_the_gpus_it_needs(cluster, executor):
    spec = gpu_spec()

    handle = await executor.submit(spec)

    [request] = cluster.received("POST", f"/namespaces/{NAMESPACE}/jobs")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    job = request.body
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["metadata"]["name"] == job_name(handle)
    assert job["metadata"]["labels"]["modelplane.dev/job-id"] == str(spec.job_id)
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    [container] = pod["containers"]
    assert container["image"] == "registry.example/train:1.2"
    assert container["command"] == ["python", "-m", "train"]
    assert container["args"] == ["--epochs", "3", "--lr", "0.0001"]
    assert container["env"] == [{"name": "WANDB_MODE", "value": "offline"}]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "4"}
    assert job["spec"]["template"]["metadata"]["labels"]["modelplane.dev/job-id"] == str(
        spec.job_id
    )


async def test_gpu_node_label_of_the_spec_selects_the_nodes(cluster, executor):
    await executor.submit(gpu_spec(gpu_node_label="cloud.example/accelerator", gpu_type="h100"))

    [request] = cluster.received("POST")
    assert request.body["spec"]["template"]["spec"]["nodeSelector"] == {
        "cloud.example/accelerator": "h100"
    }


async def test_cpu_job_has_no_gpu_limit_selector_or_toleration(cluster, executor):
    await executor.submit(gpu_spec(use_gpu=False, gpus=0, gpu_type=None))

    [request] = cluster.received("POST")
    pod = request.body["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in pod["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


async def test_status_follows_the_job_from_pending_to_succeeded(cluster, executor):
    handle = await executor.submit(gpu_spec())
    assert (await executor.status(handle)).state == ExecutionState.PENDING

    cluster.start_job(job_name(handle), NAMESPACE)
    assert (await executor.status(handle)).state == ExecutionState.RUNNING

    cluster.finish_job(job_name(handle), NAMESPACE, succeeded=True)
    status = await executor.status(handle)
    assert (status.state, status.exit_code) == (ExecutionState.SUCCEEDED, 0)


async def test_failed_job_is_failed_with_reason_and_exit_code(cluster, executor):
    handle = await executor.submit(gpu_spec())
    cluster.start_job(job_name(handle), NAMESPACE)

    cluster.finish_job(
        job_name(handle),
        NAMESPACE,
        succeeded=False,
        exit_code=137,
        message="Job has reached the specified backoff limit",
    )

    status = await executor.status(handle)
    assert status.state == ExecutionState.FAILED
    assert status.exit_code == 137
    assert status.message == "BackoffLimitExceeded: Job has reached the specified backoff limit"


async def test_resubmitting_the_same_job_is_harmless(cluster, executor):
    spec = gpu_spec()
    first = await executor.submit(spec)

    second = await executor.submit(spec)

    assert first == second
    assert len(cluster.received("POST")) == 2  # the second got 409 AlreadyExists
    assert list(cluster.jobs) == [(NAMESPACE, job_name(first))]


async def test_cancel_deletes_the_job_in_the_background(cluster, executor):
    handle = await executor.submit(gpu_spec())
    cluster.start_job(job_name(handle), NAMESPACE)

    await executor.cancel(handle)

    [request] = cluster.received("DELETE")
    assert request.path.endswith(f"/namespaces/{NAMESPACE}/jobs/{job_name(handle)}")
    assert request.body["propagationPolicy"] == "Background"
    assert cluster.jobs == {} and cluster.pods == {}
    assert (await executor.status(handle)).state == ExecutionState.KILLED


async def test_cancel_of_unknown_job_is_harmless(cluster, executor):
    handle = f"{NAMESPACE}/modelplane-{uuid.uuid4()}"

    await executor.cancel(handle)

    assert (await executor.status(handle)).state == ExecutionState.KILLED
    assert cluster.received("DELETE") == []


async def test_cancel_of_finished_job_keeps_its_result(cluster, executor):
    handle = await executor.submit(gpu_spec())
    cluster.finish_job(job_name(handle), NAMESPACE, succeeded=True)

    await executor.cancel(handle)

    assert (await executor.status(handle)).state == ExecutionState.SUCCEEDED
    assert cluster.received("DELETE") == []


async def test_other_api_errors_are_raised(cluster):
    wrong_token = KubernetesExecutor(
        KubernetesConfig(namespace=NAMESPACE, host=cluster.url, token="bad")
    )
    try:
        with pytest.raises(ApiException) as raised:
            await wrong_token.submit(gpu_spec())
        assert raised.value.status == 401
    finally:
        wrong_token.close()


async def test_logs_wait_for_the_pod_and_follow_it_until_it_ends(cluster, executor):
    handle = await executor.submit(gpu_spec())
    name = job_name(handle)
    lines: list[str] = []

    async def read() -> None:
        async for line in executor.logs(handle):
            lines.append(line)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.2)  # the pod is still Pending: no log yet
    cluster.start_job(name, NAMESPACE)
    cluster.append_log(name, "epoch 1 loss 0.9\nepoch 2 ", NAMESPACE)
    await asyncio.sleep(0.2)
    cluster.append_log(name, "loss 0.5\n", NAMESPACE)
    await asyncio.sleep(0.2)
    assert not reader.done()  # still following the running pod
    cluster.append_log(name, "saved", NAMESPACE)
    cluster.finish_job(name, NAMESPACE, succeeded=True)
    await asyncio.wait_for(reader, 10)

    assert lines == ["epoch 1 loss 0.9", "epoch 2 loss 0.5", "saved"]
    [log_request] = cluster.received("GET", "/log")
    assert log_request.query["follow"].lower() == "true"


async def test_fake_watch_streams_job_events_to_the_real_client(cluster, executor):
    handle = await executor.submit(gpu_spec())
    name = job_name(handle)
    api = k8s.BatchV1Api(executor._api_client)
    seen: list[tuple[str, str | None]] = []

    def watch_until_deleted() -> None:
        stream = watch.Watch().stream(
            api.list_namespaced_job,
            NAMESPACE,
            label_selector="app.kubernetes.io/managed-by=modelplane",
            timeout_seconds=10,
        )
        for event in stream:
            conditions = event["object"].status.conditions or []
            seen.append((event["type"], conditions[-1].type if conditions else None))
            if event["type"] == "DELETED":
                return

    async def seen_at_least(count: int) -> None:
        while len(seen) < count and not watcher.done():
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(asyncio.to_thread(watch_until_deleted))
    await asyncio.wait_for(seen_at_least(1), 10)  # the job as the watch found it
    cluster.finish_job(name, NAMESPACE, succeeded=False)
    await asyncio.wait_for(seen_at_least(2), 10)
    await asyncio.to_thread(
        api.delete_namespaced_job,
        name,
        NAMESPACE,
        body=k8s.V1DeleteOptions(propagation_policy="Background"),
    )
    await asyncio.wait_for(watcher, 10)

    assert seen == [("ADDED", None), ("MODIFIED", "Failed"), ("DELETED", "Failed")]
