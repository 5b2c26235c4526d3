"""Argo Workflows: a pipeline definition rendered as an `argoproj.io/v1alpha1` Workflow (one DAG
template, a task per stage) through hera's models, submitted and watched through the
`kubernetes` client's CustomObjectsApi, and its `status` read back as the run's and stages' states.

How each kind of stage runs on Argo:
- train, evaluate: a container running the stage's job. It writes what later stages read into
  `$MODELPLANE_OUTPUTS_DIR`: `run_id`, `artifact_uri`, `metrics.json` and one file per metric
  under `metrics/` (a condition or a reference reads `metrics/<name>`).
- register, promote: an HTTP template calling Modelplane's API (the registry's public paths);
  deploy calls serving's. The bearer token comes from a Secret in the workflow's namespace
  (`ArgoConfig.api_token_secret`).
- approve: a suspend template; approving it resumes that node, as `argo resume` does.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hera.workflows import models as m
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from services.pipelines.conditions import Reference
from services.pipelines.domain import (
    METRICS,
    PARAMS,
    REFERENCE,
    PipelineDefinition,
    RunStatus,
    StageKind,
    StageSpec,
    StageStatus,
    condition_subject,
    references_in,
)
from shared.kubernetes import api_client, custom_object

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
API_VERSION = f"{GROUP}/{VERSION}"
RUN_ID_LABEL = "modelplane.dev/pipeline-run-id"
PIPELINE_ID_LABEL = "modelplane.dev/pipeline-id"
OUTPUTS_DIR = "/modelplane/outputs"
GPU_RESOURCE = "nvidia.com/gpu"
ENTRYPOINT = "pipeline"
# The single job output files every train or evaluate task declares (empty when not written).
JOB_OUTPUTS = ("run_id", "artifact_uri")
METRIC_PREFIX = "metric-"
# Where on the API each HTTP stage goes, and which field of the answer holds the version id.
REGISTRY_VERSIONS = "/api/v1/registry/models/{model_id}/versions"
REGISTRY_TRANSITION = "/api/v1/registry/models/versions/{version_id}/transition"
SERVING_DEPLOYMENTS = "/api/v1/serving/endpoints/{endpoint_id}/deployments"


@dataclass(frozen=True)
class ArgoConfig:
    """Where workflows go and what their tasks need to reach Modelplane."""

    namespace: str = "default"
    image: str = "python:3.11-slim"  # a train or evaluate stage's image when it names none
    api_url: str = "http://modelplane-gateway:8000"
    # A Secret whose key `authorization` holds `Bearer <a Modelplane API token>`.
    api_token_secret: str = "modelplane-api-token"
    service_account: str | None = None
    gpu_node_label: str = "nvidia.com/gpu.product"


def workflow_name(pipeline_name: str, run_id: UUID) -> str:
    """One name per run, so submitting a run twice (after a crash) finds the first workflow."""
    slug = re.sub(r"[^a-z0-9-]+", "-", pipeline_name.lower()).strip("-")[:40].strip("-")
    return f"{slug or 'pipeline'}-{run_id}"


# ---- rendering -----------------------------------------------------------------------------


def _task_output(stage: str, name: str) -> str:
    return f"{{{{tasks.{stage}.outputs.parameters.{name}}}}}"


def _metric_parameter(metric: str) -> str:
    return METRIC_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "-", metric)


class _Renderer:
    def __init__(self, definition: PipelineDefinition, config: ArgoConfig) -> None:
        self.definition = definition
        self.config = config
        self.metrics_read = self._metrics_read()

    def _metrics_read(self) -> dict[str, set[str]]:
        """The metrics each stage must expose: those a condition or a reference reads."""
        read: dict[str, set[str]] = {s.name: set() for s in self.definition.stages}
        for spec in self.definition.stages:
            if spec.condition is not None:
                for reference in spec.condition.references():
                    subject = condition_subject(spec, reference)
                    if subject is not None:
                        read[subject[0]].add(subject[1])
            for reference in references_in(dict(spec.parameters)):
                if len(reference) == 3 and reference[1] == METRICS:
                    read[reference[0]].add(reference[2])
        return read

    def reference(self, reference: Reference) -> str:
        """A `${...}` as Argo writes it."""
        head, rest = reference[0], reference[1:]
        if head == PARAMS:
            return f"{{{{workflow.parameters.{rest[0]}}}}}"
        kind = self.definition.stage(head).kind
        if rest[0] == METRICS:
            name = METRICS if len(rest) == 1 else _metric_parameter(rest[1])
            return _task_output(head, name)
        if kind.runs_a_job or kind == StageKind.APPROVE:
            return _task_output(head, rest[0])
        # An HTTP stage's outputs are fields of the API's answer.
        field_name = {"version_id": "id", "stage": "stage", "deployment_id": "id"}.get(
            rest[0], rest[0]
        )
        return f"{{{{=jsonpath(tasks.{head}.outputs.result, '$.{field_name}')}}}}"

    def substitute(self, value: Any) -> Any:
        if isinstance(value, str):
            return REFERENCE.sub(
                lambda match: self.reference(tuple(match.group(1).split("."))), value
            )
        if isinstance(value, Mapping):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        return value

    def condition(self, spec: StageSpec) -> str | None:
        if spec.condition is None:
            return None

        def name(reference: Reference) -> str:
            subject = condition_subject(spec, reference)
            if subject is None:
                return f"{{{{workflow.parameters.{reference[1]}}}}}"
            return _task_output(subject[0], _metric_parameter(subject[1]))

        return spec.condition.render(name)

    def task(self, spec: StageSpec) -> m.DAGTask:
        depends = " && ".join(f"{d}.Succeeded" for d in spec.depends_on) or None
        return m.DAGTask(
            name=spec.name, template=spec.name, depends=depends, when=self.condition(spec)
        )

    def template(self, spec: StageSpec) -> m.Template:
        retry = (
            m.RetryStrategy(limit=m.IntOrString(spec.max_retries), retry_policy="Always")
            if spec.max_retries
            else None
        )
        timeout = spec.timeout_seconds
        if spec.kind.runs_a_job:
            return m.Template(
                name=spec.name,
                container=self.container(spec),
                retry_strategy=retry,
                active_deadline_seconds=m.IntOrString(timeout) if timeout else None,
                outputs=self.job_outputs(spec),
                node_selector=self.node_selector(spec),
            )
        if spec.kind == StageKind.APPROVE:
            return m.Template(
                name=spec.name,
                suspend=m.SuspendTemplate(),
                retry_strategy=None,
                timeout=f"{timeout}s" if timeout else None,
                outputs=m.Outputs(
                    parameters=[
                        m.Parameter(
                            name="approved_by",
                            value_from=m.ValueFrom(supplied=m.SuppliedValueFrom(), default=""),
                        )
                    ]
                ),
            )
        return m.Template(name=spec.name, http=self.http(spec, timeout), retry_strategy=retry)

    def container(self, spec: StageSpec) -> m.Container:
        job = self.substitute(dict(spec.parameters))
        resources = job.get("resources") or {}
        limits: dict[str, m.Quantity] = {}
        requests: dict[str, m.Quantity] = {}
        if job.get("use_gpu"):
            limits[GPU_RESOURCE] = m.Quantity(str(resources.get("gpus") or 1))
        for key in ("cpu", "memory"):
            if resources.get(key):
                requests[key] = m.Quantity(str(resources[key]))
        env = [
            m.EnvVar(name="MODELPLANE_OUTPUTS_DIR", value=OUTPUTS_DIR),
            m.EnvVar(name="MODELPLANE_PIPELINE_STAGE", value=spec.name),
            m.EnvVar(
                name="MODELPLANE_JOB_PARAMETERS", value=json.dumps(job.get("parameters") or {})
            ),
        ]
        return m.Container(
            image=job.get("image") or self.config.image,
            command=list(job["command"]),
            working_dir=job.get("working_dir"),
            env=env,
            resources=m.ResourceRequirements(limits=limits or None, requests=requests or None)
            if limits or requests
            else None,
        )

    def node_selector(self, spec: StageSpec) -> dict[str, str] | None:
        gpu_type = (spec.parameters.get("resources") or {}).get("gpu_type")
        if spec.parameters.get("use_gpu") and gpu_type:
            return {self.config.gpu_node_label: str(gpu_type).strip().lower()}
        return None

    def job_outputs(self, spec: StageSpec) -> m.Outputs:
        def file(name: str, path: str, default: str = "") -> m.Parameter:
            return m.Parameter(
                name=name, value_from=m.ValueFrom(path=f"{OUTPUTS_DIR}/{path}", default=default)
            )

        parameters = [file(name, name) for name in JOB_OUTPUTS]
        parameters.append(file(METRICS, "metrics.json", "{}"))
        parameters += [
            file(_metric_parameter(metric), f"metrics/{metric}")
            for metric in sorted(self.metrics_read[spec.name])
        ]
        return m.Outputs(parameters=parameters)

    def http(self, spec: StageSpec, timeout: int | None) -> m.HTTP:
        params = dict(spec.parameters)
        match spec.kind:
            case StageKind.REGISTER:
                path = REGISTRY_VERSIONS.format(model_id=params.pop("model_id"))
                expected = 201
            case StageKind.PROMOTE:
                path = REGISTRY_TRANSITION.format(version_id=params.pop("version_id"))
                expected = 200
            case _:
                path = SERVING_DEPLOYMENTS.format(endpoint_id=params.pop("endpoint_id"))
                expected = 201
        return m.HTTP(
            method="POST",
            url=self.config.api_url.rstrip("/") + self.substitute(path),
            body=self.body(params),
            headers=[
                m.V1alpha1HTTPHeader(name="Content-Type", value="application/json"),
                m.V1alpha1HTTPHeader(
                    name="Authorization",
                    value_from=m.HTTPHeaderSource(
                        secret_key_ref=m.SecretKeySelector(
                            name=self.config.api_token_secret, key="authorization"
                        )
                    ),
                ),
            ],
            success_condition=f"response.statusCode == {expected}",
            timeout_seconds=timeout,
        )

    def body(self, params: dict[str, Any]) -> str:
        """JSON of the stage's parameters; a whole `${x.metrics}` goes in as the JSON it is."""
        raw: dict[str, str] = {}
        body: dict[str, Any] = {}
        for key, value in params.items():
            whole = REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None
            if whole is not None and whole.group(1).split(".")[-1] == METRICS:
                marker = f"@@{key}@@"
                raw[json.dumps(marker)] = self.reference(tuple(whole.group(1).split(".")))
                body[key] = marker
            else:
                body[key] = self.substitute(value)
        text = json.dumps(body, sort_keys=True)
        for marker, value in raw.items():
            text = text.replace(marker, value)
        return text


def render_workflow(
    definition: PipelineDefinition,
    *,
    name: str,
    run_id: UUID,
    pipeline_id: UUID,
    parameters: Mapping[str, Any],
    config: ArgoConfig,
) -> dict[str, Any]:
    """The Workflow manifest of one run, built through (and so validated by) hera's models."""
    renderer = _Renderer(definition, config)
    workflow = m.Workflow(
        api_version=API_VERSION,
        kind="Workflow",
        metadata=m.ObjectMeta(
            name=name,
            namespace=config.namespace,
            labels={
                RUN_ID_LABEL: str(run_id),
                PIPELINE_ID_LABEL: str(pipeline_id),
                "app.kubernetes.io/managed-by": "modelplane",
            },
        ),
        spec=m.WorkflowSpec(
            entrypoint=ENTRYPOINT,
            service_account_name=config.service_account,
            arguments=m.Arguments(
                parameters=[
                    m.Parameter(name=key, value=_argument(value))
                    for key, value in sorted(parameters.items())
                ]
            )
            if parameters
            else None,
            templates=[
                m.Template(
                    name=ENTRYPOINT,
                    dag=m.DAGTemplate(tasks=[renderer.task(spec) for spec in definition.stages]),
                ),
                *(renderer.template(spec) for spec in definition.stages),
            ],
        ),
    )
    manifest = workflow.model_dump(by_alias=True, exclude_none=True, mode="json")
    # Read back through the models: what is submitted is what they accept.
    m.Workflow.model_validate(manifest)
    return manifest


def _argument(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# ---- status --------------------------------------------------------------------------------

RUN_PHASES = {
    "": RunStatus.PENDING,
    "Pending": RunStatus.PENDING,
    "Running": RunStatus.RUNNING,
    "Succeeded": RunStatus.SUCCEEDED,
    "Failed": RunStatus.FAILED,
    "Error": RunStatus.FAILED,
}
NODE_PHASES = {
    "Pending": StageStatus.REQUESTED,
    "Running": StageStatus.RUNNING,
    "Succeeded": StageStatus.SUCCEEDED,
    "Failed": StageStatus.FAILED,
    "Error": StageStatus.FAILED,
    "Skipped": StageStatus.SKIPPED,
    "Omitted": StageStatus.SKIPPED,
}


@dataclass(frozen=True)
class StageObservation:
    status: StageStatus
    attempt: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    message: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    node_id: str | None = None


@dataclass(frozen=True)
class WorkflowObservation:
    status: RunStatus
    stages: Mapping[str, StageObservation]
    message: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def current_stage(self) -> str | None:
        return next((n for n, s in self.stages.items() if s.status.active), None)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def _outputs(node: Mapping[str, Any]) -> dict[str, Any]:
    parameters = {
        p["name"]: p.get("value") for p in (node.get("outputs") or {}).get("parameters") or []
    }
    outputs: dict[str, Any] = {
        k: v or None
        for k, v in parameters.items()
        if not k.startswith(METRIC_PREFIX) and k != METRICS
    }
    metrics: dict[str, float] = {}
    if parameters.get(METRICS):
        try:
            metrics.update({k: float(v) for k, v in json.loads(parameters[METRICS]).items()})
        except (ValueError, TypeError, AttributeError):
            pass  # a job that wrote no valid metrics.json still has its one-file metrics
    for key, value in parameters.items():
        if key.startswith(METRIC_PREFIX) and value not in (None, ""):
            try:
                metrics.setdefault(key.removeprefix(METRIC_PREFIX), float(value))
            except ValueError:
                continue
    if metrics:
        outputs[METRICS] = metrics
    if (node.get("outputs") or {}).get("result"):
        outputs["result"] = node["outputs"]["result"]
    return outputs


def observe(workflow: Mapping[str, Any], definition: PipelineDefinition) -> WorkflowObservation:
    """The run's and each stage's state as a Workflow's `status` tells them. A task retried by
    its retryStrategy is a Retry node whose children are its attempts."""
    status = workflow.get("status") or {}
    nodes: Mapping[str, Mapping[str, Any]] = status.get("nodes") or {}
    by_task = {
        node.get("displayName"): (node_id, node)
        for node_id, node in nodes.items()
        if node.get("type") not in ("DAG", "Steps")
    }
    stages: dict[str, StageObservation] = {}
    for name in definition.names():
        if name not in by_task:
            stages[name] = StageObservation(StageStatus.PENDING)
            continue
        node_id, node = by_task[name]
        attempts = len(node.get("children") or []) if node.get("type") == "Retry" else 1
        stages[name] = StageObservation(
            status=NODE_PHASES.get(node.get("phase", ""), StageStatus.REQUESTED),
            attempt=max(attempts, 1),
            started_at=_time(node.get("startedAt")),
            ended_at=_time(node.get("finishedAt")),
            message=node.get("message") or None,
            outputs=_outputs(node),
            node_id=node_id,
        )
    run_status = RUN_PHASES.get(status.get("phase", ""), RunStatus.RUNNING)
    if run_status == RunStatus.FAILED and (workflow.get("spec") or {}).get("shutdown"):
        run_status = RunStatus.CANCELLED
    return WorkflowObservation(
        run_status,
        stages,
        status.get("message") or None,
        _time(status.get("startedAt")),
        _time(status.get("finishedAt")),
    )


# ---- the Kubernetes API --------------------------------------------------------------------


def build_api_client(host: str | None, token: str | None, verify_ssl: bool = True) -> k8s.ApiClient:
    """A client of the API server at `host`; without one, in-cluster config or the kubeconfig."""
    try:
        return api_client(host=host, token=token, verify_ssl=verify_ssl)
    except k8s_config.ConfigException:
        return k8s_config.new_client_from_config()


class ArgoWorkflows:
    """Workflows in one namespace, through the Kubernetes API (blocking calls: run them in a
    thread from async code)."""

    def __init__(self, api_client: k8s.ApiClient, config: ArgoConfig) -> None:
        self.api = k8s.CustomObjectsApi(api_client)
        self.config = config

    def submit(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the workflow; one already there by that name (a resubmission) is returned."""
        try:
            return custom_object(
                self.api.create_namespaced_custom_object(
                    GROUP, VERSION, self.config.namespace, PLURAL, dict(manifest)
                )
            )
        except ApiException as error:
            if error.status != 409:
                raise
            return self.get(manifest["metadata"]["name"])

    def get(self, name: str) -> dict[str, Any]:
        return custom_object(
            self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.config.namespace, PLURAL, name
            )
        )

    def terminate(self, name: str) -> dict[str, Any]:
        """Stop the workflow now, as `argo terminate` does: its running pods are killed."""
        return self._patch(name, {"spec": {"shutdown": "Terminate"}})

    def resume(
        self,
        name: str,
        node_id: str,
        actor: str,
        *,
        approved: bool = True,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Approve a suspended stage, as `argo resume` does: its node succeeds, naming who; a
        rejection fails the node (and so the workflow), as `argo stop --node-field-selector`."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        verdict = "approved" if approved else "rejected"
        node = {
            "phase": "Succeeded" if approved else "Failed",
            "finishedAt": now,
            "message": f"{verdict} by {actor}" + (f": {comment}" if comment else ""),
            "outputs": {"parameters": [{"name": "approved_by", "value": actor}]},
        }
        return self._patch(name, {"status": {"nodes": {node_id: node}}})

    def _patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return custom_object(
            self.api.patch_namespaced_custom_object(
                GROUP, VERSION, self.config.namespace, PLURAL, name, body
            )
        )
