"""The fake API server's custom objects, driven through the real client's CustomObjectsApi."""

import json

import pytest
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.fakes.kubernetes_api import FakeKubernetes

GROUP, VERSION, PLURAL, NAMESPACE = "serving.kserve.io", "v1beta1", "inferenceservices", "models"
TOKEN = "cluster-token"


@pytest.fixture
def cluster():
    with FakeKubernetes(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def api(cluster):
    configuration = k8s.Configuration(
        host=cluster.url, api_key={"authorization": f"Bearer {TOKEN}"}
    )
    with k8s.ApiClient(configuration) as api_client:
        yield k8s.CustomObjectsApi(api_client)


def inference_service(name: str = "iris", uri: str = "s3://models/iris/1", **labels: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "labels": labels},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "mlflow"}, "storageUri": uri}}},
        "status": {"ignored": "on create"},
    }


def create(api, body: dict) -> dict:
    return api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)


def get(api, name: str = "iris") -> dict:
    return api.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)


def test_a_created_object_gets_the_api_servers_metadata_and_no_status(api):
    created = create(api, inference_service())

    metadata = created["metadata"]
    assert metadata["namespace"] == NAMESPACE
    assert metadata["generation"] == 1
    assert metadata["uid"] and metadata["resourceVersion"] and metadata["creationTimestamp"]
    assert "status" not in created
    assert get(api) == created


def test_creating_a_name_twice_conflicts_and_a_missing_name_is_not_found(api):
    create(api, inference_service())

    with pytest.raises(ApiException) as duplicate:
        create(api, inference_service())
    with pytest.raises(ApiException) as missing:
        get(api, "absent")

    assert duplicate.value.status == 409
    assert json.loads(duplicate.value.body)["reason"] == "AlreadyExists"
    assert missing.value.status == 404
    assert (
        json.loads(missing.value.body)["message"]
        == 'inferenceservices.serving.kserve.io "absent" not found'
    )


def test_an_invalid_name_is_refused(api):
    with pytest.raises(ApiException) as invalid:
        create(api, inference_service(name="Iris_Model"))

    assert invalid.value.status == 422


def test_list_filters_by_label_and_namespace(api, cluster):
    create(api, inference_service("a", team="x"))
    create(api, inference_service("b", team="y"))
    api.create_namespaced_custom_object(
        GROUP, VERSION, "other", PLURAL, inference_service("c", team="x")
    )

    listed = api.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, label_selector="team=x"
    )

    assert [item["metadata"]["name"] for item in listed["items"]] == ["a"]
    assert listed["kind"] == "InferenceServiceList"


def test_a_merge_patch_changes_the_spec_and_bumps_the_generation(api, cluster):
    created = create(api, inference_service())

    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "iris",
        {"spec": {"predictor": {"model": {"storageUri": "s3://models/iris/2"}, "minReplicas": 2}}},
    )

    assert cluster.received("PATCH")[-1].headers["content-type"] == "application/merge-patch+json"
    model = patched["spec"]["predictor"]["model"]
    assert model == {"modelFormat": {"name": "mlflow"}, "storageUri": "s3://models/iris/2"}
    assert patched["spec"]["predictor"]["minReplicas"] == 2
    assert patched["metadata"]["generation"] == 2
    assert patched["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_a_merge_patch_with_null_deletes_a_field(api):
    create(api, inference_service(team="x"))

    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "iris", {"metadata": {"labels": {"team": None}}}
    )

    assert patched["metadata"]["labels"] == {}
    assert patched["metadata"]["generation"] == 1  # metadata is not spec


def test_a_json_patch_applies_its_operations(api):
    create(api, inference_service())

    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "iris",
        [
            {"op": "replace", "path": "/spec/predictor/model/storageUri", "value": "s3://m/3"},
            {"op": "add", "path": "/spec/predictor/maxReplicas", "value": 4},
        ],
        _content_type="application/json-patch+json",
    )

    assert patched["spec"]["predictor"]["model"]["storageUri"] == "s3://m/3"
    assert patched["spec"]["predictor"]["maxReplicas"] == 4


def test_a_strategic_merge_patch_is_unsupported_for_custom_objects(api):
    create(api, inference_service())

    with pytest.raises(ApiException) as unsupported:
        api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            "iris",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )

    assert unsupported.value.status == 415


def test_replace_needs_the_current_resource_version(api):
    created = create(api, inference_service())
    changed = {**created, "spec": {"predictor": {"model": {"storageUri": "s3://m/2"}}}}

    replaced = api.replace_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, "iris", changed
    )
    with pytest.raises(ApiException) as stale:
        api.replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris", changed)
    unversioned = {**changed, "metadata": {"name": "iris"}}
    with pytest.raises(ApiException) as missing:
        api.replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris", unversioned)

    assert replaced["spec"] == changed["spec"]
    assert replaced["metadata"]["generation"] == 2
    assert stale.value.status == 409
    assert "the object has been modified" in json.loads(stale.value.body)["message"]
    assert missing.value.status == 422


def test_the_controllers_status_is_kept_by_spec_writes_and_does_not_bump_generation(api, cluster):
    create(api, inference_service())
    ready = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}

    cluster.set_status(GROUP, PLURAL, NAMESPACE, "iris", ready)
    after_status = get(api)
    patched = api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        "iris",
        {"spec": {"predictor": {"minReplicas": 1}}, "status": {"observedGeneration": 99}},
    )

    assert after_status["status"] == ready
    assert after_status["metadata"]["generation"] == 1
    assert patched["status"] == ready  # status is a subresource: the object's writers cannot set it
    assert patched["metadata"]["generation"] == 2


def test_the_status_subresource_is_written_through_its_own_path(api):
    create(api, inference_service())

    patched = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, NAMESPACE, PLURAL, "iris", {"status": {"url": "http://iris.models"}}
    )

    assert patched["status"] == {"url": "http://iris.models"}
    assert patched["metadata"]["generation"] == 1


def test_an_object_without_a_status_subresource_takes_status_with_its_writes(api, cluster):
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "train-"},
        "spec": {"entrypoint": "main"},
        "status": {"phase": "Pending"},
    }

    created = api.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NAMESPACE, "workflows", workflow
    )
    name = created["metadata"]["name"]
    cluster.set_status("argoproj.io", "workflows", NAMESPACE, name, {"phase": "Succeeded"})

    assert name.startswith("train-")
    assert created["status"] == {"phase": "Pending"}
    fetched = api.get_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NAMESPACE, "workflows", name
    )
    assert fetched["status"] == {"phase": "Succeeded"}


def test_delete_removes_the_object_and_a_second_delete_is_not_found(api, cluster):
    create(api, inference_service())

    deleted = api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris")
    with pytest.raises(ApiException) as again:
        api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris")

    assert deleted["status"] == "Success"
    assert cluster.custom_object(GROUP, PLURAL, "iris", NAMESPACE) is None
    assert again.value.status == 404


def test_a_watch_from_a_listed_version_sees_every_change_in_order(api, cluster):
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
    create(api, inference_service())
    cluster.set_status(
        GROUP, PLURAL, NAMESPACE, "iris", {"conditions": [{"type": "Ready", "status": "True"}]}
    )
    api.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, "iris")
    stream = watch.Watch()
    seen: list[tuple[str, dict]] = []

    for event in stream.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"]))
        if event["type"] == "DELETED":
            stream.stop()

    assert [kind for kind, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert seen[1][1]["status"]["conditions"][0]["status"] == "True"
