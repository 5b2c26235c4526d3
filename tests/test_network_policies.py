"""deploy/kubernetes: every service but the gateway takes connections from gateway pods only."""

from pathlib import Path

import yaml

MANIFESTS = Path(__file__).parent.parent / "deploy" / "kubernetes"


def _documents() -> list[dict]:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    return [
        doc for name in listed for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc
    ]


def test_only_the_gateway_reaches_each_service():
    documents = _documents()
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    policies = [d for d in documents if d["kind"] == "NetworkPolicy"]
    assert "gateway" in deployments and len(deployments) > 1
    for name, deployment in deployments.items():
        if name == "gateway":
            continue
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        selecting = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(selecting) == 1, name
        [rule] = selecting[0]["spec"]["ingress"]
        assert rule["from"] == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
        ], name
        assert rule["ports"] == [{"protocol": "TCP", "port": port}], name
