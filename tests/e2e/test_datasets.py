"""A dataset version through the gateway on the platform as `make up` runs it: hashed and pushed
with DVC from a directory under the service's incoming folder, verified and activated."""

import uuid

from tests.bus import stream_events
from tests.e2e.test_use_cases import new_project, token_for

pytestmark = __import__("pytest").mark.e2e


async def test_a_version_from_a_directory_is_hashed_verified_and_activated(platform, admin, bus):
    engineer = await token_for(admin, "dana", "editor")
    viewer = await token_for(admin, "vic", "viewer")
    project = await new_project(admin)
    source = platform.state_dir / "datasets" / "incoming" / f"v1-{uuid.uuid4().hex[:6]}"
    source.mkdir(parents=True)
    (source / "train.csv").write_text("id,label\n1,a\n2,b\n")
    (source / "notes.txt").write_text("first cut\n")

    r = await admin.post("/api/v1/datasets", headers=viewer,
                         json={"name": "churn", "project_id": project})
    assert r.status_code == 403
    r = await admin.post("/api/v1/datasets", headers=engineer,
                         json={"name": "churn", "project_id": project})
    assert r.status_code == 201, r.text
    dataset = r.json()

    r = await admin.post(f"/api/v1/datasets/{dataset['id']}/versions", headers=engineer,
                         json={"source_path": str(source), "version_tag": "v1"})
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

    r = await admin.post(f"/api/v1/datasets/{dataset['id']}/versions", headers=engineer,
                         json={"source_path": "/etc", "version_tag": "stolen"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"

    subjects = {e.type for e in await stream_events(bus, "DATASETS") if e.subject == version["id"]}
    assert {f"io.modelplane.datasets.dataset_version.{state}.v1"
            for state in ("created", "verified", "activated")} <= subjects, subjects
