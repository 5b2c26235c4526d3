"""The datasets service through its HTTP API: datasets, versions pushed to a real DVC remote,
verification, activation, lineage, diffs, the `.dvc` file a real `dvc pull` uses, and events."""

import io
import os
import shutil
import tarfile
from pathlib import Path
from uuid import UUID, uuid4

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.auth import Role
from tests.bus import wait_for_events
from tests.credentials import credential_headers, known_project
from tests.datasets.dvc_cli import dvc, init_project, tree_of


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.fixture(scope="module")
def project(datasets_app) -> str:
    return known_project(datasets_app)


async def new_dataset(client, project: str, name: str | None = None) -> dict:
    reply = await client.post(
        "/datasets",
        json={
            "name": name or f"ds-{uuid4().hex[:8]}",
            "project_id": project,
            "description": "test data",
            "tags": {"team": "vision"},
        },
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


async def new_version(client, dataset_id: str, source: Path, **extra) -> dict:
    reply = await client.post(
        f"/datasets/{dataset_id}/versions", json={"source_path": str(source), **extra}
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def chain_files(sources: Path) -> tuple[Path, Path, Path]:
    """Three versions: v2 changes a CSV and adds a file; v3 changes a Parquet file's schema."""
    blobs = {f"blobs/part-{i:02d}.bin": os.urandom(128 * 1024) for i in range(30)}
    v1 = write_files(
        sources / f"v1-{uuid4().hex[:6]}",
        {**blobs, "labels.csv": b"id,label\n1,cat\n2,dog\n3,bird\n"},
    )
    pq.write_table(pa.table({"id": [1, 2, 3], "score": [0.1, 0.2, 0.3]}), v1 / "features.parquet")
    v2 = v1.with_name(v1.name.replace("v1", "v2"))
    shutil.copytree(v1, v2)
    (v2 / "labels.csv").write_bytes(b"id,label\n1,cat\n3,bird\n4,fish\n5,frog\n")
    (v2 / "README.txt").write_bytes(b"second version\n")
    v3 = v1.with_name(v1.name.replace("v1", "v3"))
    shutil.copytree(v2, v3)
    pq.write_table(
        pa.table({"id": [1, 2, 3, 4], "score": ["a", "b", "c", "d"], "split": ["train"] * 4}),
        v3 / "features.parquet",
    )
    return v1, v2, v3


async def test_three_versions_in_a_chain(datasets_client, project, sources, nc, tmp_path):
    dataset = await new_dataset(datasets_client, project)
    v1_dir, v2_dir, v3_dir = chain_files(sources)

    v1 = await new_version(datasets_client, dataset["id"], v1_dir, version_tag="v1")
    v2 = await new_version(datasets_client, dataset["id"], v2_dir, parent_version_id=v1["id"])
    # a parent may be named by its DVC content hash too
    v3 = await new_version(
        datasets_client, dataset["id"], v3_dir, parent_version_id=v2["version_id"]
    )

    assert v1["versioning_system"] == "dvc" and v1["version_id"].endswith(".dir")
    assert v1["state"] == "created" and v1["file_count"] == 32
    assert v1["compression_ratio"] > 0.9
    assert v2["compression_ratio"] < 0.1 and v3["compression_ratio"] < 0.1
    assert v2["parent_version_id"] == v1["version_id"] and v3["parent_id"] == v2["id"]

    diff = v2["diff_summary"]
    assert diff["files_added"] == ["README.txt"]
    assert diff["files_modified"] == ["labels.csv"]
    assert diff["tables"]["labels.csv"]["rows_added"] == 2
    assert diff["tables"]["labels.csv"]["rows_removed"] == 1
    table = v3["diff_summary"]["tables"]["features.parquet"]
    assert table["columns_added"] == ["split"]
    assert table["columns_retyped"] == [{"column": "score", "from": "double", "to": "string"}]
    assert table["rows_added"] == 1

    reply = await datasets_client.get(f"/datasets/versions/{v3['id']}/lineage")
    assert reply.status_code == 200
    lineage = reply.json()
    assert lineage["path"] == [v1["id"], v2["id"], v3["id"]]
    (root,) = lineage["tree"]
    assert root["id"] == v1["id"]
    assert root["children"][0]["id"] == v2["id"]
    assert root["children"][0]["children"][0]["id"] == v3["id"]

    reply = await datasets_client.get(
        f"/datasets/versions/{v3['id']}/diff", params={"against": v1["id"]}
    )
    assert reply.status_code == 200
    summary = reply.json()["summary"]
    assert summary["files_added"] == ["README.txt"]
    assert sorted(summary["files_modified"]) == ["features.parquet", "labels.csv"]

    listed = (await datasets_client.get(f"/datasets/{dataset['id']}/versions")).json()
    assert [v["id"] for v in listed["items"]] == [v1["id"], v2["id"], v3["id"]]

    # `dvc pull` of the handed-out .dvc file restores v2 exactly
    reply = await datasets_client.get(f"/datasets/versions/{v2['id']}/dvc-file")
    assert reply.status_code == 200
    user = init_project(tmp_path / "user")
    storage_uri = v2["storage_uri"]
    dvc(user, "remote", "add", "-d", "modelplane", storage_uri)
    (user / f"{dataset['name']}.dvc").write_text(reply.text)
    dvc(user, "pull")
    assert tree_of(user / dataset["name"]) == tree_of(v2_dir)

    events = await wait_for_events(nc, "DATASETS", v3["id"], 1)
    assert [e.nats_subject for e in events] == ["datasets.dataset_version.created"]
    assert events[0].data["parent_version_id"] == v2["version_id"]
    assert events[0].data["dataset_version_id"] == v3["id"]


async def test_verify_then_activate(datasets_client, project, sources, nc):
    dataset = await new_dataset(datasets_client, project)
    one = await new_version(
        datasets_client, dataset["id"], write_files(sources / uuid4().hex, {"a.txt": b"a"})
    )
    two = await new_version(
        datasets_client,
        dataset["id"],
        write_files(sources / uuid4().hex, {"a.txt": b"b"}),
        parent_version_id=one["id"],
    )

    refused = await datasets_client.post(f"/datasets/versions/{one['id']}/activate")
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/illegal-dataset-version-transition")

    for version in (one, two):
        reply = await datasets_client.post(f"/datasets/versions/{version['id']}/verify")
        assert reply.status_code == 200 and reply.json()["state"] == "verified"
    assert (await datasets_client.post(f"/datasets/versions/{one['id']}/activate")).json()[
        "state"
    ] == "active"
    assert (await datasets_client.post(f"/datasets/versions/{two['id']}/activate")).json()[
        "state"
    ] == "active"

    assert (await datasets_client.get(f"/datasets/versions/{one['id']}")).json()[
        "state"
    ] == "verified"
    assert (await datasets_client.get(f"/datasets/{dataset['id']}")).json()[
        "active_version_id"
    ] == two["id"]
    events = await wait_for_events(nc, "DATASETS", two["id"], 3)
    assert [e.nats_subject for e in events] == [
        "datasets.dataset_version.created",
        "datasets.dataset_version.verified",
        "datasets.dataset_version.activated",
    ]
    assert events[2].data["previous_dataset_version_id"] == one["id"]


async def test_a_corrupted_object_fails_the_version_naming_the_file(
    datasets_client, datasets_app, project, sources, nc
):
    dataset = await new_dataset(datasets_client, project)
    version = await new_version(
        datasets_client,
        dataset["id"],
        write_files(sources / uuid4().hex, {"ok.txt": b"fine", "data/broken.csv": b"a,b\n1,2\n"}),
    )
    remote = datasets_app.state.storage.remote(UUID(dataset["id"]))
    entry = next(
        f for f in remote.manifest(version["version_id"]).files if f.path == "data/broken.csv"
    )
    obj = remote.object_path(entry.md5)
    obj.chmod(0o644)
    obj.write_bytes(b"tampered")

    reply = await datasets_client.post(f"/datasets/versions/{version['id']}/verify")

    assert reply.status_code == 200
    body = reply.json()
    assert body["state"] == "failed"
    assert body["mismatched_files"] == ["data/broken.csv"]
    assert "data/broken.csv" in body["state_reason"]
    refused = await datasets_client.post(f"/datasets/versions/{version['id']}/activate")
    assert refused.status_code == 409
    events = await wait_for_events(nc, "DATASETS", version["id"], 2)
    assert events[-1].nats_subject == "datasets.dataset_version.failed"
    assert events[-1].data["mismatched_files"] == ["data/broken.csv"]


async def test_bad_parents_are_422_naming_the_field(datasets_client, project, sources):
    dataset = await new_dataset(datasets_client, project)
    other = await new_dataset(datasets_client, project)
    foreign = await new_version(
        datasets_client, other["id"], write_files(sources / uuid4().hex, {"x.txt": b"x"})
    )
    base = await new_version(
        datasets_client, dataset["id"], write_files(sources / uuid4().hex, {"y.txt": b"y"})
    )
    child_dir = write_files(sources / uuid4().hex, {"y.txt": b"z"})
    child = await new_version(
        datasets_client, dataset["id"], child_dir, parent_version_id=base["id"]
    )

    for parent, rule in (
        (foreign["id"], "parent-same-dataset"),
        (str(uuid4()), "parent-exists"),
        ("0" * 32 + ".dir", "parent-exists"),
    ):
        reply = await datasets_client.post(
            f"/datasets/{dataset['id']}/versions",
            json={"source_path": str(child_dir), "parent_version_id": parent},
        )
        assert reply.status_code == 422, reply.text
        body = reply.json()
        assert body["type"].endswith("/dataset-invalid")
        assert body["errors"][0]["loc"] == ["body", "parent_version_id"]
        assert body["errors"][0]["type"] == rule

    # base's content again, under its own descendant: the lineage would loop
    base_dir = write_files(sources / uuid4().hex, {"y.txt": b"y"})
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions",
        json={"source_path": str(base_dir), "parent_version_id": child["id"]},
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["type"] == "lineage-acyclic"

    # the same content twice is one version
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions", json={"source_path": str(base_dir)}
    )
    assert reply.status_code == 409
    assert reply.json()["dataset_version_id"] == base["id"]


async def test_bad_input_is_422_naming_the_field(datasets_client, project, sources, tmp_path):
    reply = await datasets_client.post("/datasets", json={"name": "../etc", "project_id": project})
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["loc"] == ["body", "name"]

    reply = await datasets_client.post("/datasets", json={"name": "ok", "project_id": "nope"})
    assert reply.status_code == 422
    assert "project_id" in reply.json()["detail"]

    dataset = await new_dataset(datasets_client, project)
    outside = write_files(tmp_path / "outside", {"secret.txt": b"s"})
    for path in (
        str(outside),
        "relative/path",
        str(sources / "missing"),
        f"{sources}/nul\x00byte",
        f"{sources}/../{outside.parent.name}",
    ):
        reply = await datasets_client.post(
            f"/datasets/{dataset['id']}/versions", json={"source_path": path}
        )
        assert reply.status_code == 422, path
        assert reply.json()["errors"][0]["loc"] == ["body", "source_path"]

    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions",
        json={
            "source_path": str(write_files(sources / uuid4().hex, {"a": b"a"})),
            "version_tag": "no spaces allowed",
        },
    )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["loc"] == ["body", "version_tag"]


async def test_duplicate_names_and_unknown_ids(datasets_client, project):
    dataset = await new_dataset(datasets_client, project)
    again = await datasets_client.post(
        "/datasets", json={"name": dataset["name"], "project_id": project}
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/dataset-name-taken")
    assert (await datasets_client.get(f"/datasets/{uuid4()}")).status_code == 404
    assert (await datasets_client.get(f"/datasets/versions/{uuid4()}")).status_code == 404


async def test_roles_in_the_dataset_project(datasets_client, datasets_app, project, sources):
    dataset = await new_dataset(datasets_client, project)
    pid = UUID(project)
    viewer = credential_headers("viewer@example.com", role=None, project_roles={pid: Role.VIEWER})
    editor = credential_headers("editor@example.com", role=None, project_roles={pid: Role.EDITOR})
    stranger = credential_headers("stranger@example.com", role=None)
    source = write_files(sources / uuid4().hex, {"f.txt": b"f"})

    assert (
        await datasets_client.get(f"/datasets/{dataset['id']}", headers=viewer)
    ).status_code == 200
    assert (
        await datasets_client.get(f"/datasets/{dataset['id']}", headers=stranger)
    ).status_code == 403
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions", headers=viewer, json={"source_path": str(source)}
    )
    assert reply.status_code == 403
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions", headers=editor, json={"source_path": str(source)}
    )
    assert reply.status_code == 201
    assert reply.json()["created_by"] == "editor@example.com"
    listed = (await datasets_client.get("/datasets", headers=stranger)).json()
    assert listed == {"items": [], "total": 0}
    mine = (await datasets_client.get("/datasets", headers=viewer)).json()
    assert dataset["id"] in [d["id"] for d in mine["items"]]
    no_credential = await datasets_client.get("/datasets", headers={"X-Modelplane-Credential": "x"})
    assert no_credential.status_code == 401


async def test_upload_and_download(datasets_client, project):
    dataset = await new_dataset(datasets_client, project)
    files = {"train/a.csv": b"x,y\n1,2\n", "train/b.bin": os.urandom(50_000), "notes.txt": b"n"}
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        files=[("files", (name, content)) for name, content in files.items()],
        data={"version_tag": "uploaded"},
    )
    assert reply.status_code == 201, reply.text
    version = reply.json()
    assert version["file_count"] == 3 and version["version_tag"] == "uploaded"

    reply = await datasets_client.get(f"/datasets/versions/{version['id']}/files")
    assert reply.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(reply.content)) as archive:
        got = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert got == {f"{dataset['name']}/{k}": v for k, v in files.items()}


async def test_an_upload_past_the_limit_is_413(datasets_client, project):
    dataset = await new_dataset(datasets_client, project)
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        files=[("files", ("big.bin", os.urandom(3 * 1024 * 1024)))],
    )
    assert reply.status_code == 413
    assert reply.json()["type"].endswith("/dataset-upload-too-large")

    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        files=[("files", ("../escape.txt", b"x"))],
    )
    assert reply.status_code == 422


async def test_an_upload_without_a_length_is_cut_off_at_the_limit(
    datasets_client, datasets_app, project
):
    dataset = await new_dataset(datasets_client, project)
    boundary = "modelplane-test-boundary"

    async def body():
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="big.bin"\r\n\r\n'
        ).encode()
        for _ in range(48):  # 3 MiB in 64 KiB chunks, past the 2 MiB limit
            yield os.urandom(64 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status_code == 413
    assert reply.json()["max_bytes"] == 2 * 1024 * 1024
    versions = (await datasets_client.get(f"/datasets/{dataset['id']}/versions")).json()
    assert versions["total"] == 0
    assert list(datasets_app.state.settings.upload_dir.iterdir()) == []  # nothing left behind


async def test_a_version_gone_from_its_remote_is_409_not_500(
    datasets_client, datasets_app, project, sources
):
    dataset = await new_dataset(datasets_client, project)
    version = await new_version(
        datasets_client, dataset["id"], write_files(sources / uuid4().hex, {"a.txt": b"gone soon"})
    )
    remote = datasets_app.state.storage.remote(UUID(dataset["id"]))
    remote.object_path(version["version_id"]).unlink()

    for path in ("dvc-file", "files", f"diff?against={version['id']}"):
        reply = await datasets_client.get(f"/datasets/versions/{version['id']}/{path}")
        assert reply.status_code == 409, path
        assert reply.json()["type"].endswith("/dataset-version-unreadable")
    reply = await datasets_client.post(f"/datasets/versions/{version['id']}/verify")
    assert reply.json()["state"] == "failed"


async def test_an_upload_cannot_escape_its_folder_or_fail_with_500(
    datasets_client, datasets_app, project
):
    dataset = await new_dataset(datasets_client, project)
    upload_dir = datasets_app.state.settings.upload_dir
    before = set(upload_dir.iterdir()) if upload_dir.exists() else set()
    names = [
        "a\\..\\..\\escaped.txt",  # backslashes read as slashes must not smuggle `..` in
        "a\\..\\b.txt",
        "x" * 300,  # one segment past what a file system takes
        "/".join(["d" * 200] * 30),  # the whole path past PATH_MAX
    ]
    for name in names:
        reply = await datasets_client.post(
            f"/datasets/{dataset['id']}/versions/upload", files=[("files", (name, b"data"))]
        )
        assert reply.status_code == 422, (name[:40], reply.text)
        assert reply.json()["type"].endswith("/dataset-upload-invalid")
    # A file where a folder of another file goes.
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        files=[("files", ("a", b"1")), ("files", ("a/b", b"2"))],
    )
    assert reply.status_code == 422 and reply.json()["type"].endswith("/dataset-upload-invalid")
    # Part headers past what the parser takes.
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="{"y" * 9000}"\r\n\r\ndata\r\n--{boundary}--\r\n'
    ).encode()
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status_code == 422 and reply.json()["type"].endswith("/dataset-upload-invalid")
    assert set(upload_dir.iterdir()) == before  # nothing written, nothing left behind
    assert not (upload_dir.parent / "escaped.txt").exists()
    versions = (await datasets_client.get(f"/datasets/{dataset['id']}/versions")).json()
    assert versions["total"] == 0


async def test_a_nul_character_is_422_not_500(datasets_client, project, sources):
    for body in ({"description": "a\x00b"}, {"tags": {"k": "v\x00"}}, {"tags": {"k\x00": "v"}}):
        reply = await datasets_client.post(
            "/datasets", json={"name": f"nul-{uuid4().hex[:8]}", "project_id": project, **body}
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["type"].endswith("/dataset-invalid")
        assert reply.json()["errors"][0]["loc"][-1] in body
    dataset = await new_dataset(datasets_client, project)
    source = str(write_files(sources / uuid4().hex, {"a": b"a"}))
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions",
        json={"source_path": source, "parent_version_id": "a\x00"},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["errors"][0]["loc"] == ["body", "parent_version_id"]
    reply = await datasets_client.post(
        f"/datasets/{dataset['id']}/versions/upload",
        files=[("files", ("a.csv", b"1"))],
        data={"parent_version_id": "x\x00"},
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["type"].endswith("/dataset-invalid")
    assert (await datasets_client.get(f"/datasets/{dataset['id']}/versions")).json()["total"] == 0


async def test_the_list_filters_by_a_substring_of_the_name(datasets_client, project):
    tag = uuid4().hex[:8]
    wanted = await new_dataset(datasets_client, project, f"Churn_{tag}-2026")
    await new_dataset(datasets_client, project, f"churnX{tag}")  # `_` is no wildcard
    listed = (await datasets_client.get("/datasets", params={"name": f"churn_{tag}"})).json()
    assert [d["id"] for d in listed["items"]] == [wanted["id"]]
    assert listed["total"] == 1
    nul = await datasets_client.get("/datasets", params={"name": "a\x00b"})
    assert nul.status_code == 422
