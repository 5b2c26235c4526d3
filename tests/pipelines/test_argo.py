"""Argo Workflows: the rendered Workflow (validated by hera's models), its submission through the
real `kubernetes` client to the fake API server, and its status read back as the run's."""

import re
import uuid

import pytest
from hera.workflows import models as m
from kubernetes import client as k8s

from services.pipelines.domain import RunStatus, StageStatus, parse_definition
from services.pipelines.integrations.argo import (
    GROUP,
    PLURAL,
    RUN_ID_LABEL,
    ArgoConfig,
    ArgoWorkflows,
    observe,
    render_workflow,
    workflow_name,
)
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.pipelines.definitions import MODEL_ID, release_pipeline, stage

NAMESPACE = "pipelines"
CONFIG = ArgoConfig(
    namespace=NAMESPACE, image="registry.local/trainer:1", api_url="http://gateway.modelplane:8000"
)
RUN_ID, PIPELINE_ID = uuid.uuid4(), uuid.uuid4()
TASK_OUTPUT = re.compile(r"\{\{tasks\.([a-z0-9-]+)\.outputs\.parameters\.([A-Za-z0-9_-]+)\}\}")


def manifest_of(raw: dict, **parameters) -> dict:
    definition = parse_definition(raw)
    return render_workflow(
        definition,
        name=workflow_name("Fraud XGB", RUN_ID),
        run_id=RUN_ID,
        pipeline_id=PIPELINE_ID,
        parameters={**definition.parameters, **parameters},
        config=CONFIG,
    )


def templates(manifest: dict) -> dict[str, dict]:
    return {t["name"]: t for t in manifest["spec"]["templates"]}


def test_the_release_pipeline_renders_as_a_dag_workflow():
    raw = release_pipeline(threshold=0.9)
    raw["stages"][0].update(max_retries=2, timeout_seconds=600)
    raw["stages"][0]["parameters"] = {
        "command": ["python", "train.py"],
        "use_gpu": True,
        "resources": {"gpu_type": "A100-80GB", "gpus": 2},
    }
    manifest = manifest_of(raw, threshold=0.95)

    assert (manifest["apiVersion"], manifest["kind"]) == ("argoproj.io/v1alpha1", "Workflow")
    assert manifest["metadata"]["name"] == f"fraud-xgb-{RUN_ID}"
    assert manifest["metadata"]["labels"][RUN_ID_LABEL] == str(RUN_ID)
    assert manifest["spec"]["arguments"]["parameters"] == [{"name": "threshold", "value": "0.95"}]
    dag = templates(manifest)["pipeline"]["dag"]["tasks"]
    assert [(t["name"], t.get("depends")) for t in dag] == [
        ("train", None),
        ("evaluate", "train.Succeeded"),
        ("register", "evaluate.Succeeded"),
        ("staging", "register.Succeeded"),
        ("approve", "staging.Succeeded"),
        ("production", "approve.Succeeded"),
    ]
    assert dag[2]["when"] == (
        "{{tasks.evaluate.outputs.parameters.metric-auc}} >= {{workflow.parameters.threshold}}"
    )

    train = templates(manifest)["train"]
    assert train["retryStrategy"] == {"limit": 2, "retryPolicy": "Always"}
    assert train["activeDeadlineSeconds"] == 600
    assert train["container"]["image"] == "registry.local/trainer:1"
    assert train["container"]["command"] == ["python", "train.py"]
    assert train["container"]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert train["nodeSelector"] == {"nvidia.com/gpu.product": "a100-80gb"}
    assert "retryStrategy" not in templates(manifest)["evaluate"]

    register = templates(manifest)["register"]["http"]
    assert register["url"] == (
        f"http://gateway.modelplane:8000/api/v1/registry/models/{MODEL_ID}/versions"
    )
    assert register["body"] == (
        '{"metrics": {{tasks.evaluate.outputs.parameters.metrics}}, '
        '"run_id": "{{tasks.train.outputs.parameters.run_id}}"}'
    )
    production = templates(manifest)["production"]["http"]
    assert production["url"].endswith(
        "/versions/{{=jsonpath(tasks.register.outputs.result, '$.id')}}/transition"
    )
    assert "suspend" in templates(manifest)["approve"]
    # What is submitted is exactly what hera's models accept and give back.
    assert (
        m.Workflow.model_validate(manifest).model_dump(
            by_alias=True, exclude_none=True, mode="json"
        )
        == manifest
    )


def test_every_task_output_read_is_declared_by_an_upstream_task():
    manifest = manifest_of(release_pipeline())
    by_name = templates(manifest)
    text = str(manifest)
    read = set(TASK_OUTPUT.findall(text))
    assert ("evaluate", "metric-auc") in read and ("train", "run_id") in read
    for task, parameter in read:
        declared = {p["name"] for p in by_name[task].get("outputs", {}).get("parameters", [])}
        assert parameter in declared, (task, parameter)


def test_a_stage_timeout_and_retries_of_an_http_stage_render_on_its_template():
    manifest = manifest_of(
        {
            "stages": [
                stage(
                    "promote",
                    "promote",
                    max_retries=1,
                    timeout_seconds=30,
                    parameters={"version_id": "v", "stage": "staging"},
                ),
                stage("gate", "approve", "promote", timeout_seconds=3600),
            ]
        }
    )
    assert templates(manifest)["promote"]["retryStrategy"]["limit"] == 1
    assert templates(manifest)["promote"]["http"]["timeoutSeconds"] == 30
    assert templates(manifest)["gate"]["timeout"] == "3600s"


@pytest.fixture
def cluster():
    with FakeKubernetes() as fake:
        yield fake


@pytest.fixture
def argo(cluster):
    with k8s.ApiClient(k8s.Configuration(host=cluster.url)) as api_client:
        yield ArgoWorkflows(api_client, CONFIG)


def node(name: str, phase: str, type_: str = "Pod", **fields) -> dict:
    return {
        "id": f"wf-{name}",
        "name": f"wf.{name}",
        "displayName": name,
        "type": type_,
        "phase": phase,
        "startedAt": "2026-12-07T03:00:00Z",
        **fields,
    }


def test_a_submitted_workflow_is_created_once_however_often_it_is_submitted(argo, cluster):
    manifest = manifest_of(release_pipeline())
    created = argo.submit(manifest)
    again = argo.submit(manifest)
    assert again["metadata"]["uid"] == created["metadata"]["uid"]
    stored = cluster.custom_object(GROUP, PLURAL, manifest["metadata"]["name"], NAMESPACE)
    assert stored["spec"] == manifest["spec"]
    assert [r.method for r in cluster.requests] == ["POST", "POST", "GET"]
    assert (
        observe(argo.get(manifest["metadata"]["name"]), parse_definition(release_pipeline())).status
        == RunStatus.PENDING
    )


def test_status_maps_a_retried_node_a_failed_one_and_the_run(argo, cluster):
    raw = {
        "stages": [
            stage("train", "train", max_retries=1),
            stage("evaluate", "evaluate", "train"),
            stage("report", "train", "evaluate"),
        ]
    }
    definition = parse_definition(raw)
    name = argo.submit(manifest_of(raw))["metadata"]["name"]
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {
            "phase": "Failed",
            "startedAt": "2026-12-07T03:00:00Z",
            "finishedAt": "2026-12-07T03:09:00Z",
            "message": "child 'wf-evaluate' failed",
            "nodes": {
                "wf": node(name, "Failed", "DAG", children=["wf-train"]),
                "wf-train": node(
                    "train",
                    "Succeeded",
                    "Retry",
                    children=["wf-train-0", "wf-train-1"],
                    finishedAt="2026-12-07T03:05:00Z",
                    outputs={
                        "parameters": [
                            {"name": "run_id", "value": "mlflow-7"},
                            {"name": "metrics", "value": '{"loss": 0.25}'},
                        ]
                    },
                ),
                "wf-train-0": node("train(0)", "Failed", message="OOMKilled"),
                "wf-train-1": node("train(1)", "Succeeded"),
                "wf-evaluate": node(
                    "evaluate", "Failed", message="exit code 3", finishedAt="2026-12-07T03:08:00Z"
                ),
                "wf-report": node("report", "Omitted"),
            },
        },
    )
    seen = observe(argo.get(name), definition)
    assert seen.status == RunStatus.FAILED and seen.message == "child 'wf-evaluate' failed"
    train, evaluate, report = (seen.stages[n] for n in ("train", "evaluate", "report"))
    assert (train.status, train.attempt) == (StageStatus.SUCCEEDED, 2)
    assert train.outputs == {"run_id": "mlflow-7", "metrics": {"loss": 0.25}}
    assert train.ended_at.isoformat() == "2026-12-07T03:05:00+00:00"
    assert (evaluate.status, evaluate.attempt, evaluate.message) == (
        StageStatus.FAILED,
        1,
        "exit code 3",
    )
    assert report.status == StageStatus.SKIPPED


def test_a_running_workflow_and_a_condition_that_skipped(argo, cluster):
    definition = parse_definition(release_pipeline())
    name = argo.submit(manifest_of(release_pipeline()))["metadata"]["name"]
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {
            "phase": "Running",
            "nodes": {
                "wf-train": node("train", "Succeeded"),
                "wf-evaluate": node(
                    "evaluate",
                    "Succeeded",
                    outputs={
                        "parameters": [
                            {"name": "metric-auc", "value": "0.81"},
                            {"name": "metrics", "value": "{}"},
                        ]
                    },
                ),
                "wf-register": node(
                    "register", "Skipped", "Skipped", message="when 'false' evaluated false"
                ),
                "wf-staging": node("staging", "Running", "HTTP"),
            },
        },
    )
    seen = observe(argo.get(name), definition)
    assert seen.status == RunStatus.RUNNING and seen.current_stage == "staging"
    assert seen.stages["evaluate"].outputs["metrics"] == {"auc": 0.81}
    assert seen.stages["register"].status == StageStatus.SKIPPED
    assert seen.stages["approve"].status == StageStatus.PENDING


def test_terminate_cancels_and_resume_approves(argo, cluster):
    definition = parse_definition(release_pipeline())
    name = argo.submit(manifest_of(release_pipeline()))["metadata"]["name"]
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {"phase": "Running", "nodes": {"wf-approve": node("approve", "Running", "Suspend")}},
    )

    approved = argo.resume(name, "wf-approve", "bob@example.com")
    gate = observe(approved, definition).stages["approve"]
    assert gate.status == StageStatus.SUCCEEDED and gate.outputs == {
        "approved_by": "bob@example.com"
    }
    assert cluster.received("PATCH")[-1].headers["content-type"] == "application/merge-patch+json"

    argo.terminate(name)
    assert cluster.custom_object(GROUP, PLURAL, name, NAMESPACE)["spec"]["shutdown"] == "Terminate"
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {"phase": "Failed", "message": "Stopped with strategy 'Terminate'"},
    )
    assert observe(argo.get(name), definition).status == RunStatus.CANCELLED
