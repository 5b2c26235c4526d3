"""The registry answers a pipeline's register and promote stages: the version, the transition
(through the same use case as a person's), or a refusal, each naming the stage attempt."""

import asyncio
import uuid

from shared.events import CloudEvent
from shared.events.pipelines import (
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
)
from tests.bus import publish, stream_events

RUN = uuid.uuid4()


async def ask(nc, command, copies: int = 1) -> None:
    """Publish the command as the pipelines service would; `copies` > 1 stores the same event
    more than once (a redelivery)."""
    event = CloudEvent.wrap(
        command,
        service="pipelines",
        aggregate_id=command.pipeline_run_id,
        actor=command.requested_by,
    )
    for copy in range(copies):
        await publish(nc, event, f"{event.id}-{copy}")


DONE = "registry.stage_command.done.v1"


async def answers(
    nc, stage: str, count: int = 1, timeout: float = 15, *, done: bool = False
) -> list[CloudEvent]:
    """The registry's events naming `stage` of RUN, once `count` have come (or the timeout):
    the change's own and refusals, or (`done`) the answers that the command was done."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = [
            e
            for e in await stream_events(nc, "REGISTRY")
            if e.data.get("pipeline_run_id") == str(RUN)
            and e.data.get("pipeline_stage") == stage
            and e.type.endswith(DONE) == done
        ]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.05)


def stage_fields(stage: str, attempt: int = 1, **fields) -> dict:
    return {
        "pipeline_run_id": RUN,
        "stage": stage,
        "attempt": attempt,
        "requested_by": "pia",
        **fields,
    }


async def test_a_register_stage_gets_one_version_even_when_its_command_is_redelivered(
    client, nc, model
):
    command = ModelVersionRegistrationRequested(
        **stage_fields("register"),
        project_id=uuid.UUID(model["project_id"]),
        model_id=uuid.UUID(model["id"]),
        run_id="mlflow-1",
        metrics={"auc": 0.93},
    )
    await ask(nc, command, copies=2)
    [created] = await answers(nc, "register")
    assert created.type.endswith("registry.model_version.created.v1")
    assert (created.data["pipeline_attempt"], created.actor) == (1, "pia")
    assert created.data["metrics"] == {"auc": 0.93}
    [done] = await answers(nc, "register", done=True)
    assert done.data["command"] == "pipelines.stage.registration_requested"
    assert (done.data["version_id"], done.data["version"], done.data["pipeline_attempt"]) == (
        created.data["version_id"],
        created.data["version"],
        1,
    )
    await asyncio.sleep(1)
    versions = (await client.get(f"/models/{model['id']}/versions")).json()["items"]
    assert [v["id"] for v in versions] == [created.data["version_id"]]
    assert versions[0]["created_by"] == "pia" and versions[0]["run_id"] == "mlflow-1"


async def test_a_promote_stage_moves_the_version_and_a_repeat_is_refused(client, nc, model):
    version = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    promote = ModelVersionPromotionRequested(
        **stage_fields("staging"),
        project_id=uuid.UUID(model["project_id"]),
        version_id=uuid.UUID(version["id"]),
        to_stage="staging",
        comment="from the pipeline",
    )
    await ask(nc, promote)
    [moved] = await answers(nc, "staging")
    assert moved.type.endswith("registry.model_version.transitioned.v1")
    assert (moved.data["to_stage"], moved.data["actor"]) == ("staging", "pia")
    [done] = await answers(nc, "staging", done=True)
    assert (done.data["version_id"], done.data["stage"]) == (version["id"], "staging")
    got = (await client.get(f"/models/{model['id']}/versions/{version['version']}")).json()
    assert got["stage"] == "staging"

    again = promote.model_copy(update={"attempt": 2})
    await ask(nc, again)
    [_, refused] = await answers(nc, "staging", count=2)
    assert refused.type.endswith("registry.stage_command.refused.v1")
    assert (refused.data["pipeline_attempt"], refused.data["problem"]) == (2, "stage-unchanged")


async def test_a_stage_of_another_projects_run_is_refused(client, nc, model):
    version = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    await ask(
        nc,
        ModelVersionPromotionRequested(
            **stage_fields("elsewhere"),
            project_id=uuid.uuid4(),
            version_id=uuid.UUID(version["id"]),
            to_stage="production",
        ),
    )
    await ask(
        nc,
        ModelVersionRegistrationRequested(
            **stage_fields("elsewhere", attempt=2),
            project_id=uuid.uuid4(),
            model_id=uuid.UUID(model["id"]),
        ),
    )
    refusals = await answers(nc, "elsewhere", count=2)
    assert sorted(e.data["problem"] for e in refusals) == ["outside-the-runs-project"] * 2
    got = (await client.get(f"/models/{model['id']}/versions/{version['version']}")).json()
    assert got["stage"] == "none"
    assert len((await client.get(f"/models/{model['id']}/versions")).json()["items"]) == 1


async def test_a_move_to_production_needs_the_approval_the_pipeline_vouches_for(client, nc, model):
    version = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    fields = {
        "project_id": uuid.UUID(model["project_id"]),
        "version_id": uuid.UUID(version["id"]),
        "to_stage": "production",
    }
    await ask(nc, ModelVersionPromotionRequested(**stage_fields("unapproved"), **fields))
    [refused] = await answers(nc, "unapproved")
    assert refused.type.endswith("registry.stage_command.refused.v1")
    assert refused.data["problem"] == "forbidden"

    await ask(
        nc, ModelVersionPromotionRequested(**stage_fields("approved"), **fields, approved_by="omar")
    )
    [moved] = await answers(nc, "approved")
    assert (moved.data["to_stage"], moved.data["actor"]) == ("production", "pia")
    got = (await client.get(f"/models/{model['id']}/versions/{version['version']}")).json()
    assert got["stage"] == "production"
