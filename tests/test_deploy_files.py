"""docker-compose.yml and the Kubernetes manifests declare each service as its entry in the
service table says: the module run, the port, the variables, the readiness probe, the URLs the
gateway is given, and what starts before what."""

from pathlib import Path

import pytest
import yaml

from shared.service_table import SERVICES, ServiceSpec, backends

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
NAMESPACE = "modelplane"
# What the compose file runs besides the table's services.
COMPOSE_INFRASTRUCTURE = {"nats", "postgres", "mlflow"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def manifests() -> list[dict]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    documents = []
    for name in kustomization["resources"]:
        documents += [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]
    return documents


def manifest(kind: str, name: str) -> dict:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} in deploy/kubernetes"
    return found[0]


def test_compose_runs_every_service_of_the_table_and_nothing_else() -> None:
    assert set(compose()) == {spec.name for spec in SERVICES} | COMPOSE_INFRASTRUCTURE


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_compose_declares_the_service_as_its_table_entry(spec: ServiceSpec) -> None:
    service = compose()[spec.name]
    assert service["command"] == ["python", "-m", spec.module]
    env = service["environment"]
    assert env[spec.host_variable] == "0.0.0.0"
    assert env[spec.port_variable] == str(spec.default_port)
    probe = f"http://127.0.0.1:{spec.default_port}{spec.readiness_path}"
    assert any(probe in part for part in service["healthcheck"]["test"])
    for earlier in SERVICES:
        if earlier.start_order < spec.start_order:
            assert service["depends_on"][earlier.name] == {"condition": "service_healthy"}


def test_compose_gives_the_gateway_every_backend_by_its_url_variable() -> None:
    gateway = compose()["gateway"]["environment"]
    for spec in backends():
        assert gateway[spec.url_variable] == f"http://{spec.name}:{spec.default_port}"


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_kubernetes_declares_the_service_as_its_table_entry(spec: ServiceSpec) -> None:
    deployment = manifest("Deployment", spec.name)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", spec.module]
    assert {"name": "http", "containerPort": spec.default_port} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[spec.host_variable] == "0.0.0.0"
    assert env[spec.port_variable] == str(spec.default_port)
    assert container["readinessProbe"]["httpGet"] == {"path": spec.readiness_path, "port": "http"}
    service = manifest("Service", spec.name)
    assert {"name": "http", "port": spec.default_port, "targetPort": "http"} in (
        service["spec"]["ports"]
    )


def test_kubernetes_gives_the_gateway_every_backend_by_its_url_variable() -> None:
    config = manifest("ConfigMap", "modelplane-config")["data"]
    for spec in backends():
        url = f"http://{spec.name}.{NAMESPACE}.svc.cluster.local:{spec.default_port}"
        assert config[spec.url_variable] == url
