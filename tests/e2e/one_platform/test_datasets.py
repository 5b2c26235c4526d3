"""A dataset version through the gateway on the platform as `make up` runs it: hashed and pushed
with DVC from a directory under the service's incoming folder, verified and activated."""

import asyncio
import io
import itertools
import os
import sys
import tarfile
import time
import uuid

from tests.bus import stream_events
from tests.e2e.clients import new_project, token_for

pytestmark = __import__("pytest").mark.e2e


async def test_a_version_from_a_directory_is_hashed_verified_and_activated(platform, admin, bus):
    engineer = await token_for(admin, "dana", "editor")
    viewer = await token_for(admin, "vic", "viewer")
    project = await new_project(admin)
    source = platform.state_dir / "datasets" / "incoming" / f"v1-{uuid.uuid4().hex[:6]}"
    source.mkdir(parents=True)
    (source / "train.csv").write_text("id,label\n1,a\n2,b\n")
    (source / "notes.txt").write_text("first cut\n")

    r = await admin.post(
        "/api/v1/datasets", headers=viewer, json={"name": "churn", "project_id": project}
    )
    assert r.status_code == 403
    r = await admin.post(
        "/api/v1/datasets", headers=engineer, json={"name": "churn", "project_id": project}
    )
    assert r.status_code == 201, r.text
    dataset = r.json()

    r = await admin.post(
        f"/api/v1/datasets/{dataset['id']}/versions",
        headers=engineer,
        json={"source_path": str(source), "version_tag": "v1"},
    )
    assert r.status_code == 201, r.text
    version = r.json()
    assert version["versioning_system"] == "dvc" and version["version_id"].endswith(".dir")
    assert version["file_count"] == 2

    r = await admin.post(f"/api/v1/datasets/versions/{version['id']}/verify", headers=engineer)
    assert r.status_code == 200, r.text
    r = await admin.post(f"/api/v1/datasets/versions/{version['id']}/activate", headers=engineer)
    assert r.status_code == 200, r.text
    r = await admin.get(f"/api/v1/datasets/versions/{version['id']}/dvc-file", headers=viewer)
    assert r.status_code == 200 and version["version_id"].removesuffix(".dir") in r.text

    r = await admin.post(
        f"/api/v1/datasets/{dataset['id']}/versions",
        headers=engineer,
        json={"source_path": "/etc", "version_tag": "stolen"},
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"

    subjects = {e.type for e in await stream_events(bus, "DATASETS") if e.subject == version["id"]}
    assert {
        f"io.modelplane.datasets.dataset_version.{state}.v1"
        for state in ("created", "verified", "activated")
    } <= subjects, subjects


def mixed_files() -> dict[str, bytes]:
    """A few MB of files of several kinds, some in folders."""
    rows = "".join(f"{i},{'ab'[i % 2]},{i * 0.5}\n" for i in range(20_000))
    return {
        "train.csv": ("id,label,score\n" + rows).encode(),
        "images/a.bin": os.urandom(3 * 1024 * 1024),
        "images/b.bin": os.urandom(2 * 1024 * 1024),
        "nested/deeper/notes.txt": b"uploaded through the gateway\n",
    }


async def test_an_upload_through_the_gateway_hashes_as_the_same_directory(platform, admin):
    engineer = await token_for(admin, "uma", "editor")
    project = await new_project(admin)
    files = mixed_files()
    uploaded_to, made_from = [
        (
            await admin.post(
                "/api/v1/datasets",
                headers=engineer,
                json={"name": f"{name}-{uuid.uuid4().hex[:6]}", "project_id": project},
            )
        ).json()
        for name in ("uploaded", "from-dir")
    ]

    r = await admin.post(
        f"/api/v1/datasets/{uploaded_to['id']}/versions/upload",
        headers=engineer,
        files=[("files", (name, data)) for name, data in files.items()],
        data={"version_tag": "up1"},
        timeout=120,
    )
    assert r.status_code == 201, r.text
    uploaded = r.json()
    assert r.headers["location"] == f"/api/v1/datasets/versions/{uploaded['id']}"
    assert uploaded["file_count"] == len(files)
    assert uploaded["total_size_bytes"] == sum(map(len, files.values())) > 5 * 1024 * 1024

    source = platform.state_dir / "datasets" / "incoming" / f"same-{uuid.uuid4().hex[:6]}"
    for name, data in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    r = await admin.post(
        f"/api/v1/datasets/{made_from['id']}/versions",
        headers=engineer,
        json={"source_path": str(source)},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version_id"] == uploaded["version_id"]
    assert r.json()["checksum"] == uploaded["checksum"]

    # The files come back as they went up.
    r = await admin.get(
        f"/api/v1/datasets/versions/{uploaded['id']}/files", headers=engineer, timeout=120
    )
    assert r.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(r.content)) as archive:
        got = {
            m.name.split("/", 1)[1]: archive.extractfile(m).read()
            for m in archive.getmembers()
            if m.isfile()
        }
    assert got == files


async def wait_for(fetch, ready, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if ready(value):
            return value
        assert time.monotonic() < deadline, value
        await asyncio.sleep(0.3)


async def test_lineage_from_a_dataset_version_to_a_deployment_and_back(platform, admin):
    engineer = await token_for(admin, "lin", "editor")
    outsider = await token_for(admin, "otto", None)
    project = await new_project(admin)
    source = platform.state_dir / "datasets" / "incoming" / f"lineage-{uuid.uuid4().hex[:6]}"
    source.mkdir(parents=True)
    (source / "train.csv").write_text("id,label\n1,a\n2,b\n")
    dataset = (
        await admin.post(
            "/api/v1/datasets", headers=engineer, json={"name": "lineage", "project_id": project}
        )
    ).json()
    version = (
        await admin.post(
            f"/api/v1/datasets/{dataset['id']}/versions",
            headers=engineer,
            json={"source_path": str(source)},
        )
    ).json()
    model = (
        await admin.post(
            "/api/v1/registry/models",
            headers=engineer,
            json={"name": "lineage-model", "project_id": project},
        )
    ).json()
    job_body = {
        "name": "lineage-train",
        "project_id": project,
        "env": "dev",
        "command": [sys.executable, "-c", "print('trained')"],
        "dataset_version_ids": [version["id"]],
        "register_model": {"model_id": model["id"]},
    }

    # Not verified yet: the jobs service, told by the datasets events, refuses it.
    r = await wait_for(
        lambda: admin.post("/api/v1/jobs", headers=engineer, json=job_body),
        lambda r: r.status_code == 422 and "dataset-version-verified" in r.text,
    )
    assert r.json()["errors"][0]["loc"] == ["body", "dataset_version_ids"]
    r = await admin.post(f"/api/v1/datasets/versions/{version['id']}/verify", headers=engineer)
    assert r.json()["state"] == "verified"
    r = await wait_for(
        lambda: admin.post("/api/v1/jobs", headers=engineer, json=job_body),
        lambda r: r.status_code == 201,
    )
    job = r.json()
    job = await wait_for(
        lambda: admin.get(f"/api/v1/jobs/{job['id']}", headers=engineer),
        lambda r: r.json()["status"] in ("succeeded", "failed"),
        180,
    )
    job = job.json()
    assert job["status"] == "succeeded", job
    run_id = job["experiment_run"]["tracking_run_id"]
    versions = await wait_for(
        lambda: admin.get(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer),
        lambda r: r.json()["items"],
    )
    [model_version] = versions.json()["items"]
    r = await wait_for(
        lambda: admin.post(
            "/api/v1/serving/endpoints",
            headers=engineer,
            json={
                "name": f"lineage-{uuid.uuid4().hex[:6]}",
                "project_id": project,
                "model_id": model["id"],
                "model_version_id": model_version["id"],
                "env": "dev",
            },
        ),
        lambda r: r.status_code == 201,
    )
    [deployment] = r.json()["deployments"]

    chain = [
        ("dataset_version", version["id"]),
        ("job", job["id"]),
        ("run", run_id),
        ("model_version", model_version["id"]),
        ("deployment", deployment["id"]),
    ]
    links = [
        {"from": {"kind": a[0], "id": a[1]}, "to": {"kind": b[0], "id": b[1]}}
        for a, b in itertools.pairwise(chain)
    ]
    for kind, node_id in (chain[0], chain[-1], chain[2]):
        r = await wait_for(
            lambda k=kind, n=node_id: admin.get(f"/api/v1/lineage/{k}/{n}", headers=engineer),
            lambda r: r.status_code == 200 and len(r.json()["nodes"]) == 5,
            30,
        )
        lineage = r.json()
        assert lineage["start"] == {"kind": kind, "id": node_id}
        assert [(n["kind"], n["id"]) for n in lineage["nodes"]] == chain
        assert lineage["edges"] == links
    assert lineage["nodes"][0]["data"]["version_id"] == version["version_id"]
    assert lineage["nodes"][3]["data"]["run_id"] == run_id

    for kind, node_id in (chain[0], chain[-1]):  # serving's own list is not scoped: the gateway is
        r = await admin.get(f"/api/v1/lineage/{kind}/{node_id}", headers=outsider)
        assert r.status_code == 404 and r.json()["type"].endswith("/lineage-start-not-found")
    r = await admin.get(f"/api/v1/lineage/pipeline/{version['id']}", headers=engineer)
    assert r.status_code == 422
