"""KubernetesExecutor: runs a job as a Kubernetes `batch/v1` Job (the production backend).

Uses the synchronous `kubernetes` client in worker threads. The handle is `<namespace>/<name>`,
the Job's name derived from the job id, so submitting again finds the same Job.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from services.jobs.integrations.executor import (
    ExecutionState,
    ExecutionStatus,
    JobSpec,
    UnknownHandle,
    parameter_args,
)
from shared.kubernetes import api_client

logger = logging.getLogger(__name__)

JOB_ID_LABEL = "modelplane.dev/job-id"
JOB_NAME_ANNOTATION = "modelplane.dev/job-name"
GPU_RESOURCE = "nvidia.com/gpu"
CONTAINER_NAME = "job"


@dataclass(frozen=True)
class KubernetesConfig:
    """Where Jobs go. Give `host` (and `token`), or a `kubeconfig`; neither means in-cluster."""

    namespace: str = "default"
    host: str | None = None
    token: str | None = None
    ca_cert: str | None = None  # path to the API server's CA bundle
    verify_ssl: bool = True
    kubeconfig: str | None = None
    context: str | None = None
    # The node label whose value is the GPU model (what gpu_type names) unless the spec says.
    gpu_node_label: str = "nvidia.com/gpu.product"
    request_timeout_seconds: float = 30.0
    log_poll_seconds: float = 1.0


def build_api_client(config: KubernetesConfig) -> k8s.ApiClient:
    return api_client(
        host=config.host,
        token=config.token,
        ca_cert=config.ca_cert,
        verify_ssl=config.verify_ssl,
        kubeconfig=config.kubeconfig,
        context=config.context,
    )


def job_name(spec: JobSpec) -> str:
    return f"modelplane-{spec.job_id}"  # 47 characters: within the 63 a label value allows


def build_job(spec: JobSpec, namespace: str, default_gpu_node_label: str) -> k8s.V1Job:
    name = job_name(spec)
    labels = {JOB_ID_LABEL: str(spec.job_id), "app.kubernetes.io/managed-by": "modelplane"}
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if spec.cpu:
        limits["cpu"] = requests["cpu"] = spec.cpu
    if spec.memory:
        limits["memory"] = requests["memory"] = spec.memory
    node_selector = None
    tolerations = None
    if spec.use_gpu:
        # Extended resources are requested through limits only; requests default to them.
        limits[GPU_RESOURCE] = str(max(spec.gpus, 1))
        tolerations = [k8s.V1Toleration(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")]
        if spec.gpu_type:
            node_selector = {spec.gpu_node_label or default_gpu_node_label: spec.gpu_type}
    container = k8s.V1Container(
        name=CONTAINER_NAME,
        image=spec.image,
        command=list(spec.command),
        args=parameter_args(spec.parameters) or None,
        working_dir=spec.working_dir,
        env=[k8s.V1EnvVar(name=key, value=value) for key, value in spec.env.items()] or None,
        resources=k8s.V1ResourceRequirements(limits=limits or None, requests=requests or None),
    )
    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels=labels,
            annotations={JOB_NAME_ANNOTATION: spec.name},
        ),
        spec=k8s.V1JobSpec(
            backoff_limit=spec.backoff_limit,
            active_deadline_seconds=spec.deadline_seconds,
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    restart_policy="Never",
                    containers=[container],
                    node_selector=node_selector,
                    tolerations=tolerations,
                ),
            ),
        ),
    )


class KubernetesExecutor:
    def __init__(self, config: KubernetesConfig, api_client: k8s.ApiClient | None = None) -> None:
        self.config = config
        self._api_client = api_client or build_api_client(config)
        self._batch = k8s.BatchV1Api(self._api_client)
        self._core = k8s.CoreV1Api(self._api_client)

    def close(self) -> None:
        self._api_client.close()

    async def submit(self, spec: JobSpec) -> str:
        namespace = self.config.namespace
        manifest = build_job(spec, namespace, self.config.gpu_node_label)
        try:
            await self._call(self._batch.create_namespaced_job, namespace, manifest)
        except ApiException as exc:
            if exc.status != 409:  # AlreadyExists: the name is the job id's, so it is this job
                raise
            logger.info("kubernetes job %s/%s already submitted", namespace, job_name(spec))
        return f"{namespace}/{job_name(spec)}"

    async def status(self, handle: str) -> ExecutionStatus:
        namespace, name = _split(handle)
        try:
            job = await self._call(self._batch.read_namespaced_job, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return ExecutionStatus(ExecutionState.KILLED, None, "the Job no longer exists")
            raise
        status = job.status or k8s.V1JobStatus()
        true = {c.type: c for c in status.conditions or [] if c.status == "True"}
        if "Complete" in true:
            return ExecutionStatus(ExecutionState.SUCCEEDED, 0)
        if "Failed" in true:
            condition = true["Failed"]
            message = ": ".join(filter(None, [condition.reason, condition.message]))
            return ExecutionStatus(
                ExecutionState.FAILED, await self._exit_code(namespace, name), message or None
            )
        # `ready` counts pods whose containers run; clusters older than 1.24 only report `active`.
        if status.ready or (status.ready is None and status.active):
            return ExecutionStatus(ExecutionState.RUNNING)
        return ExecutionStatus(ExecutionState.PENDING)

    async def cancel(self, handle: str) -> None:
        namespace, name = _split(handle)
        # A finished Job keeps its final state (and its pods' logs) instead of becoming "killed".
        if (await self.status(handle)).finished:
            return
        try:
            await self._call(
                self._batch.delete_namespaced_job,
                name,
                namespace,
                body=k8s.V1DeleteOptions(propagation_policy="Background"),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def logs(self, handle: str) -> AsyncIterator[str]:
        namespace, name = _split(handle)
        pod = await self._started_pod(handle, namespace, name)
        if pod is None:
            return
        try:
            response = await self._call(
                self._core.read_namespaced_pod_log,
                pod,
                namespace,
                container=CONTAINER_NAME,
                follow=True,
                _preload_content=False,
                _request_timeout=None,  # a followed log may stay quiet for as long as the job runs
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # gone or not started after all: logs are best effort
                logger.info("no logs for %s: %s", handle, exc.reason)
                return
            raise
        chunks: Iterator[bytes] = response.stream(None, decode_content=True)
        partial = b""
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
                *lines, partial = (partial + chunk).split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if partial:
                yield partial.decode(errors="replace")
        finally:
            response.release_conn()

    async def _started_pod(self, handle: str, namespace: str, name: str) -> str | None:
        """The name of the Job's newest pod once it has started; None if the Job ended without one."""
        while True:
            pods = await self._pods(namespace, name)
            started = [p for p in pods if p.status and p.status.phase != "Pending"]
            if started:
                return started[-1].metadata.name if started[-1].metadata else None
            if (await self.status(handle)).finished:
                return None
            await asyncio.sleep(self.config.log_poll_seconds)

    async def _pods(self, namespace: str, name: str) -> list[k8s.V1Pod]:
        pods = await self._call(
            self._core.list_namespaced_pod, namespace, label_selector=f"job-name={name}"
        )
        return sorted(pods.items, key=_created)

    async def _exit_code(self, namespace: str, name: str) -> int | None:
        try:
            pods = await self._pods(namespace, name)
        except ApiException:
            return None
        for pod in reversed(pods):
            for container in (pod.status and pod.status.container_statuses) or []:
                if container.state and container.state.terminated:
                    return container.state.terminated.exit_code
        return None

    async def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.config.request_timeout_seconds)
        return await asyncio.to_thread(method, *args, **kwargs)


def _split(handle: str) -> tuple[str, str]:
    namespace, _, name = handle.partition("/")
    if not namespace or not name:
        raise UnknownHandle(handle)
    return namespace, name


def _created(pod: k8s.V1Pod) -> float:
    stamp = pod.metadata.creation_timestamp if pod.metadata else None
    return stamp.timestamp() if stamp else 0.0
