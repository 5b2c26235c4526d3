"""The env's DVC remote chosen by IntegrationConfig: a local remote named there is where
versions go and where `dvc pull` finds them; an S3 remote's config is checked by DVC's own
schema and rendered into the `.dvc/config` a user pulls with, without any network."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from configobj import ConfigObj

from services.datasets.integrations.dvc import (
    DvcRemote,
    RemoteChoice,
    RemoteInvalid,
    remote_config,
)
from shared.environments import Env
from shared.events import CloudEvent
from shared.events.gateway import IntegrationConfigChanged
from tests.bus import publish, wait_consumed
from tests.credentials import GatewayCredential, known_project
from tests.datasets.dvc_cli import dvc, init_project, tree_of

S3_OPTIONS = {
    "endpointurl": "http://minio.internal:9000",
    "region": "eu-west-1",
    "use_ssl": False,
    "secret_access_key": "do-not-hand-out",
}


def test_an_s3_remote_is_checked_by_dvc_and_rendered_into_dvc_config():
    choice = RemoteChoice.from_config(
        "s3", {"url": "s3://ml-data/datasets/", "options": S3_OPTIONS}
    )
    assert choice.base == "s3://ml-data/datasets"

    text = remote_config(f"{choice.base}/d-1", choice.shown())
    config = ConfigObj(text.splitlines())
    assert config["core"]["remote"] == "modelplane"
    assert dict(config['remote "modelplane"']) == {
        "url": "s3://ml-data/datasets/d-1",
        "endpointurl": "http://minio.internal:9000",
        "region": "eu-west-1",
        "use_ssl": "false",
    }  # credentials stay with the service

    for backend, settings, named in (
        ("s3", {"url": "s3://b/p", "options": {"no_such_option": 1}}, "no_such_option"),
        ("s3", {"url": "gs://b/p"}, "s3://"),
        ("gcs", {}, "needs a url"),
        ("local", {"url": "relative/dir"}, "absolute path"),
        ("ftp", {"url": "ftp://h/p"}, "no DVC remote backend"),
    ):
        with pytest.raises(RemoteInvalid, match=named):
            RemoteChoice.from_config(backend, settings)


def test_a_remote_whose_dvc_plugin_is_missing_is_refused_by_name():
    with pytest.raises(RemoteInvalid, match="dvc-s3"):
        DvcRemote("s3://ml-data/datasets/d-1", {"region": "eu-west-1"})


@pytest.fixture(scope="module")
async def stg_client(datasets_settings):
    """The service pushing for env stg, whose IntegrationConfig these tests set."""
    from services.datasets.app import create_app

    app = create_app(datasets_settings.model_copy(update={"datasets_env": Env.STG}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://datasets/api/v1",
            auth=GatewayCredential("alice@example.com"),
            timeout=60,
        ) as client,
    ):
        client.project = known_project(app)
        yield client


async def configure(nc, backend: str, settings: dict) -> None:
    """Publish the gateway's event for env stg, and wait until the service has taken it in."""
    seq = await publish(
        nc,
        CloudEvent.wrap(
            IntegrationConfigChanged(
                env="stg",
                concern="dataset_versioning",
                backend=backend,
                settings=settings,
                changed_by="admin",
                changed_at=datetime.now(UTC),
            ),
            service="gateway",
            aggregate_id="stg",
        ),
    )
    await wait_consumed(nc, "GATEWAY", "datasets-gateway-integration-config-changed", seq)


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


async def test_a_local_remote_named_by_integration_config_is_used_and_pulled_from(
    stg_client, nc, sources, tmp_path
):
    team_remote = tmp_path / "team-remote"
    await configure(nc, "local", {"url": str(team_remote)})
    datasets = [
        (
            await stg_client.post(
                "/datasets",
                json={"name": f"ds-{uuid4().hex[:8]}", "project_id": stg_client.project},
            )
        ).json()
        for _ in range(2)
    ]
    source = write(sources / uuid4().hex, {"a.csv": b"x,y\n1,2\n", "b/c.bin": b"\x00" * 4096})

    reply = await stg_client.post(
        f"/datasets/{datasets[0]['id']}/versions", json={"source_path": str(source)}
    )
    assert reply.status_code == 201, reply.text
    version = reply.json()
    assert version["storage_uri"] == str(team_remote / datasets[0]["id"])
    stored = team_remote / datasets[0]["id"] / "files" / "md5"
    assert (stored / version["version_id"][:2] / version["version_id"][2:]).is_file()

    user = init_project(tmp_path / "user")
    config = await stg_client.get(f"/datasets/versions/{version['id']}/dvc-config")
    assert config.status_code == 200
    merged = ConfigObj(str(user / ".dvc" / "config"))  # the project's own settings kept
    merged.merge(ConfigObj(config.text.splitlines()))
    merged.write()
    dvc_file = await stg_client.get(f"/datasets/versions/{version['id']}/dvc-file")
    (user / f"{datasets[0]['name']}.dvc").write_text(dvc_file.text)
    dvc(user, "pull")
    assert tree_of(user / datasets[0]["name"]) == tree_of(source)

    # An S3 remote this machine has no DVC plugin for: the next push is refused, naming why,
    # and what was stored in the local remote is still read from there.
    await configure(nc, "s3", {"url": "s3://ml-data/datasets", "options": {"region": "eu-west-1"}})
    reply = await stg_client.post(
        f"/datasets/{datasets[1]['id']}/versions", json={"source_path": str(source)}
    )
    assert reply.status_code == 409, reply.text
    assert reply.json()["type"].endswith("/dataset-remote-invalid")
    assert "dvc-s3" in reply.json()["detail"]
    verified = await stg_client.post(f"/datasets/versions/{version['id']}/verify")
    assert verified.json()["state"] == "verified"

    await configure(nc, "s3", {"url": "s3://ml-data/datasets", "options": {"bogus": 1}})
    reply = await stg_client.post(
        f"/datasets/{datasets[1]['id']}/versions", json={"source_path": str(source)}
    )
    assert reply.status_code == 409 and "bogus" in reply.json()["detail"]
