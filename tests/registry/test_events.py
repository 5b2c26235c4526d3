"""Events on a real NATS JetStream: once per change, nothing lost, nothing applied twice."""

import asyncio
import contextlib
import uuid

import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import func, select

from services.registry.models import ModelVersion
from services.registry.service import KnownStages
from shared.events import CloudEvent
from shared.events.jobs import JobSucceeded, RegisterModel
from shared.events.registry import ModelRegistered
from shared.outbox import OutboxRelay
from tests.bus import stream_events, wait_for_events
from tests.registry.conftest import ACTOR


async def test_each_change_publishes_its_event_exactly_once(client, nc, runtime, model):
    v = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    r = await client.post(
        f"/models/versions/{v['id']}/transition", json={"stage": "staging", "comment": "try it"}
    )
    assert r.status_code == 200

    events = await wait_for_events(nc, "REGISTRY", v["id"], count=2)
    await runtime.relay.drain()  # nothing left that could still arrive
    events = [e for e in await stream_events(nc, "REGISTRY") if e.subject == v["id"]]
    assert [e.type for e in events] == [
        "io.modelplane.registry.model_version.created.v1",
        "io.modelplane.registry.model_version.transitioned.v1",
    ]
    transitioned = events[1]
    assert transitioned.source == "/modelplane/registry"
    assert transitioned.actor == "alice@example.com"
    assert transitioned.data == {
        "model_id": model["id"],
        "model_name": model["name"],
        "version_id": v["id"],
        "version": "1",
        "from_stage": "none",
        "to_stage": "staging",
        "comment": "try it",
        "actor": "alice@example.com",
        "pipeline_run_id": None,
        "pipeline_stage": None,
        "pipeline_attempt": None,
    }
    registered = await wait_for_events(nc, "REGISTRY", model["id"], count=1)
    assert [e.type for e in registered] == ["io.modelplane.registry.model.registered.v1"]


async def test_a_failed_command_publishes_nothing(client, nc, runtime, model):
    await client.post(f"/models/{model['id']}/versions", json={"version": "a"})
    r = await client.post(f"/models/{model['id']}/versions", json={"version": "a"})
    assert r.status_code == 409
    again = {"name": model["name"], "project_id": model["project_id"]}
    assert (await client.post("/models", json=again)).status_code == 409
    await runtime.relay.drain()
    created = [
        e
        for e in await stream_events(nc, "REGISTRY", "registry.model_version.created")
        if e.data["model_id"] == model["id"]
    ]
    assert len(created) == 1
    registered = [
        e
        for e in await stream_events(nc, "REGISTRY", "registry.model.registered")
        if e.data["project_id"] == model["project_id"]
    ]
    assert len(registered) == 1


async def test_a_numbered_versions_event_names_its_model_and_number(client, nc, runtime, project):
    # The number and the name are filled into the event by the statement that writes both.
    name = f"it's \\ \" ünïcode \u2603 {uuid.uuid4()}"
    r = await client.post("/models", json={"name": name, "project_id": project})
    versions = f"/models/{r.json()['id']}/versions"
    labelled = (await client.post(versions, json={"version": "1"})).json()
    numbered = [
        (await client.post(versions, json={"metrics": {"acc": 0.5}})).json() for _ in range(2)
    ]
    assert [v["version"] for v in numbered] == ["2", "3"]  # 1 is a label: skipped
    await runtime.relay.drain()
    events = [
        e
        for e in await stream_events(nc, "REGISTRY", "registry.model_version.created")
        if e.data["model_id"] == r.json()["id"]
    ]
    assert [(e.subject, e.data["model_name"], e.data["version"]) for e in events] == [
        (v["id"], name, v["version"]) for v in [labelled, *numbered]
    ]
    assert events[1].data["metrics"] == {"acc": 0.5} and events[1].data["created_by"] == ACTOR


def _model_registered(name: str) -> CloudEvent:
    """The event of a model registered just now, as the registry would write it."""
    model_id = uuid.uuid4()
    return CloudEvent.wrap(
        ModelRegistered(
            model_id=model_id,
            name=name,
            project_id=uuid.uuid4(),
            description=None,
            tags={},
            created_by=ACTOR,
        ),
        service="registry",
        aggregate_id=model_id,
        actor=ACTOR,
        correlation_id=None,
    )


@pytest.fixture
async def relay_stopped(runtime):
    """The service's running relay stopped for the test: only the test's own relays publish."""
    runtime._relay_task.cancel()
    done, _ = await asyncio.wait([runtime._relay_task], timeout=5)
    if not done:
        runtime._relay_task.print_stack()
        raise AssertionError("relay did not stop")
    yield
    runtime._relay_task = asyncio.create_task(runtime.relay.run())


@pytest.fixture
async def outbox_rows(runtime):
    """Writes rows `(id, subject, payload)` into the registry's outbox by hand; whatever is left
    of them is removed after the test."""
    ids: list[uuid.UUID] = []

    async def put(*rows: tuple[uuid.UUID, str, bytes]) -> None:
        ids.extend(row[0] for row in rows)
        async with runtime.connection() as conn:
            await conn.executemany(
                "INSERT INTO registry.outbox (id, subject, payload) VALUES ($1, $2, $3)", rows
            )

    yield put
    async with runtime.connection() as conn:
        await conn.execute("DELETE FROM registry.outbox WHERE id = ANY($1::uuid[])", ids)


async def test_relay_killed_between_commit_and_publish_loses_nothing(
    relay_stopped, nc, runtime, client, model
):
    # The change commits with nobody to publish it.
    v = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    assert "id" in v, v
    await asyncio.sleep(0.3)
    assert [e for e in await stream_events(nc, "REGISTRY") if e.subject == v["id"]] == []

    # A relay that crashed after publishing but before removing: the same rows go out again.
    js = nc.jetstream()
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(runtime.outbox))).all()
    assert rows, "the committed event waits in the outbox"
    for row in rows:
        await js.publish(row.subject, row.payload, headers={"Nats-Msg-Id": str(row.id)})

    # A fresh relay (the restarted process) publishes what is left, and dedup drops the copy.
    restarted = OutboxRelay(runtime.engine, runtime.outbox, nc)
    assert await restarted.drain() == len(rows)
    events = [e for e in await stream_events(nc, "REGISTRY") if e.subject == v["id"]]
    assert [e.type for e in events] == ["io.modelplane.registry.model_version.created.v1"]
    async with runtime.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(runtime.outbox))
    assert left == 0


async def test_an_event_jetstream_refuses_stays_in_the_outbox_and_holds_up_no_other(
    nc, runtime, client, model, outbox_rows
):
    # An outbox row whose subject no stream takes (say, written by a newer version of the
    # service before its stream was widened), followed by an ordinary event.
    refused = uuid.uuid4()
    await outbox_rows((refused, "nowhere.model.renamed", b"{}"))
    v = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    await runtime.relay.drain()
    assert [e.type for e in await wait_for_events(nc, "REGISTRY", v["id"], count=1)] == [
        "io.modelplane.registry.model_version.created.v1"
    ]
    async with runtime.connection() as conn:
        left = await conn.fetch("SELECT id FROM registry.outbox")
    assert [row["id"] for row in left] == [refused]


async def test_the_sweep_holds_no_transaction_while_the_bus_answers(
    relay_stopped, nc, runtime, outbox_rows
):
    # A subject someone listens on who is not JetStream: its publish waits out the ack timeout.
    subject = f"silent{uuid.uuid4().hex[:8]}.a"
    listener = await nc.subscribe(subject)
    unacked = uuid.uuid4()
    await outbox_rows((unacked, subject, b"{}"))
    try:
        draining = asyncio.create_task(runtime.relay.drain())
        await asyncio.sleep(1.0)
        assert not draining.done()
        # While the bus has not answered, the claim is committed (another connection sees it)
        # and the row is free: a transaction still open would hold its lock.
        async with runtime.connection() as conn, conn.transaction():
            claimed = await conn.fetchval(
                "SELECT retry_at > now() FROM registry.outbox WHERE id = $1 FOR UPDATE NOWAIT",
                unacked,
            )
        assert claimed
        assert await draining == 0
    finally:
        await listener.unsubscribe()
    # Still there, claimed until its claim ends: then the next sweep tries it again.
    async with runtime.connection() as conn:
        claimed = await conn.fetchval(
            "SELECT retry_at > now() FROM registry.outbox WHERE id = $1", unacked
        )
    assert claimed


async def test_the_sweep_goes_on_past_a_whole_batch_of_refused_events(nc, runtime, outbox_rows):
    # More refused rows than a batch holds, then one JetStream takes: it is published too.
    refused = [uuid.uuid4() for _ in range(3)]
    taken = _model_registered("swept")
    model_id = taken.subject
    await outbox_rows(
        *((r, "nowhere.model.renamed", b"{}") for r in refused),
        (taken.id, taken.nats_subject, taken.to_json()),
    )
    sweeping = OutboxRelay(runtime.engine, runtime.outbox, nc, batch_size=2)
    assert await sweeping.drain() == 1
    [swept] = await wait_for_events(nc, "REGISTRY", str(model_id), count=1)
    assert swept.id == taken.id
    async with runtime.connection() as conn:
        left = await conn.fetch("SELECT id FROM registry.outbox ORDER BY seq")
    assert [row["id"] for row in left] == refused


async def test_a_refused_event_waits_longer_each_time_and_goes_out_once_a_stream_takes_it(
    relay_stopped, nc, runtime, outbox_rows
):
    # An event whose subject no stream takes yet (its stream not yet widened, say).
    event = _model_registered("refused for a while")
    refused = event.id
    await outbox_rows((refused, "nowhere.model.registered", event.to_json()))

    async def the_row() -> tuple[int, str, float] | None:
        async with runtime.connection() as conn:
            row = await conn.fetchrow(
                "SELECT attempts, last_error, extract(epoch FROM retry_at - now()) AS pause"
                " FROM registry.outbox WHERE id = $1",
                refused,
            )
        return row and (row["attempts"], row["last_error"], float(row["pause"]))

    async def its_pause_is_over() -> None:
        async with runtime.connection() as conn:
            await conn.execute("UPDATE registry.outbox SET retry_at = now() WHERE id = $1", refused)

    js = nc.jetstream()
    relay = OutboxRelay(runtime.engine, runtime.outbox, nc)
    try:
        assert await relay.drain() == 0
        attempts, why, pause = await the_row()
        assert (attempts, why) == (1, "no stream takes the message's subject")
        assert 1.0 < pause <= 2.0  # the sweep's grace period

        # Until its pause is over, sweeps leave it alone: no second attempt.
        assert await relay.drain() == 0
        assert (await the_row())[0] == 1

        # Refused again: the pause doubles.
        await its_pause_is_over()
        assert await relay.drain() == 0
        attempts, _, pause = await the_row()
        assert attempts == 2 and 2.0 < pause <= 4.0

        # A stream takes the subject now: once its pause is over, the event goes out.
        await js.add_stream(name="NOWHERE", subjects=["nowhere.>"])
        await its_pause_is_over()
        assert await relay.drain() == 1
        assert await the_row() is None
        assert [e.id for e in await stream_events(nc, "NOWHERE")] == [refused]
    finally:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream("NOWHERE")


async def test_a_change_whose_event_the_bus_cannot_carry_is_413_and_stores_nothing(
    client, runtime, model
):
    too_large = "https://modelplane.dev/problems/event-too-large"
    # Each metric some 30 bytes of the event: past the bus's limit, whatever it is.
    metrics = {f"metric_{i}": i / 7 for i in range(runtime.max_event_bytes // 20)}
    r = await client.post(f"/models/{model['id']}/versions", json={"metrics": metrics})
    assert r.status_code == 413
    assert r.json()["type"] == too_large
    assert r.json()["max_bytes"] == runtime.max_event_bytes

    # The same in a transaction, refused at its commit: the version keeps what it had.
    v = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    assert v["version"] == "1"  # the refused one took no number
    r = await client.patch(
        f"/models/versions/{v['id']}", json={"metadata": {"notes": "x" * runtime.max_event_bytes}}
    )
    assert r.status_code == 413
    assert r.json()["type"] == too_large
    listed = (await client.get(f"/models/{model['id']}/versions")).json()
    assert listed["total"] == 1 and listed["items"][0]["metadata"] == {}


async def test_a_commit_hands_its_events_to_the_relay_without_waiting_for_a_sweep(
    relay_stopped, nc, runtime, client, model
):
    # A relay whose sweep would not look at a young row for hours: only dispatch can publish.
    hourly = OutboxRelay(runtime.engine, runtime.outbox, nc, poll_seconds=3600)
    running, runtime.relay = runtime.relay, hourly
    task = asyncio.create_task(hourly.run())
    try:
        await asyncio.sleep(0.1)  # its first sweep has run and found nothing old enough
        v = (await client.post(f"/models/{model['id']}/versions", json={})).json()
        events = await wait_for_events(nc, "REGISTRY", v["id"], count=1)
        assert [e.type for e in events] == ["io.modelplane.registry.model_version.created.v1"]

        async def removed():
            outbox = runtime.outbox
            async with runtime.engine.connect() as conn:
                rows = await conn.scalar(select(func.count()).where(outbox.c.id == events[0].id))
            return rows == 0

        await wait_until(removed)
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=5)
        runtime.relay = running  # for `relay_stopped` to start again


async def test_two_concurrent_promotions_leave_exactly_one_production_version(
    client, runtime, model
):
    versions = [
        (await client.post(f"/models/{model['id']}/versions", json={})).json() for _ in range(6)
    ]
    replies = await asyncio.gather(
        *(
            client.post(f"/models/versions/{v['id']}/transition", json={"stage": "production"})
            for v in versions
        )
    )
    assert [r.status_code for r in replies] == [200] * 6
    async with runtime.sessionmaker() as s:
        stages = (
            await s.execute(
                select(ModelVersion.stage, func.count())
                .where(ModelVersion.model_id == uuid.UUID(model["id"]))
                .group_by(ModelVersion.stage)
            )
        ).all()
    assert dict(stages) == {"production": 1, "archived": 5}
    # What the model keeps of its versions agrees: the counts, and which one serves production.
    for stage, n in (("production", 1), ("archived", 5), ("none", 0)):
        listed = await client.get(f"/models/{model['id']}/versions?stage={stage}&limit=1")
        assert listed.json()["total"] == n
    serving = (await client.get(f"/models/{model['id']}/versions?stage=production")).json()
    async with runtime.connection() as conn:
        pointer = await conn.fetchval(
            "SELECT production_version_id FROM registry.registered_models WHERE id = $1",
            uuid.UUID(model["id"]),
        )
    assert str(pointer) == serving["items"][0]["id"]
    # Every archive is itself on record: 6 promotions + 5 supersessions.
    total = 0
    for v in versions:
        total += (await client.get(f"/models/versions/{v['id']}/transitions")).json()["total"]
    assert total == 11


@pytest.mark.parametrize("remembered", [True, False], ids=["remembered", "read"])
async def test_a_promotion_planned_from_a_state_gone_stale_is_planned_again(
    client, nc, runtime, model, registry_app, monkeypatch, remembered
):
    # Both promotions find "no production version" before either writes: the model row is
    # held by another transaction until both wait for it. The one that goes second finds its
    # plan stale and plans again, and so archives the version promoted first: from the version
    # as read when it had planned from what the process remembered, else under the lock.
    if not remembered:
        monkeypatch.setattr(registry_app.state, "known_stages", KnownStages(limit=0))
    first, second = [
        (await client.post(f"/models/{model['id']}/versions", json={})).json() for _ in range(2)
    ]
    async with runtime.connection() as holder:
        async with holder.transaction():
            await holder.execute(
                "SELECT FROM registry.registered_models WHERE id = $1 FOR UPDATE",
                uuid.UUID(model["id"]),
            )
            promotions = [
                asyncio.create_task(
                    client.post(
                        f"/models/versions/{v['id']}/transition", json={"stage": "production"}
                    )
                )
                for v in (first, second)
            ]

            async def both_waiting() -> bool:
                # Asked on a connection of its own: inside a transaction the view stands still.
                async with runtime.connection() as conn:
                    return (
                        await conn.fetchval(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                            " AND wait_event_type = 'Lock'"
                        )
                        >= 2
                    )

            await wait_until(both_waiting)
        replies = await asyncio.gather(*promotions)
    assert [r.status_code for r in replies] == [200, 200]
    later = max(replies, key=lambda r: len(r.json()["transitions"])).json()
    earlier = min(replies, key=lambda r: len(r.json()["transitions"])).json()
    assert [(t["version_id"], t["from_stage"], t["to_stage"]) for t in later["transitions"]] == [
        (earlier["version"]["id"], "production", "archived"),
        (later["version"]["id"], "none", "production"),
    ]
    for stage, n in (("production", 1), ("archived", 1), ("none", 0)):
        listed = await client.get(f"/models/{model['id']}/versions?stage={stage}&limit=1")
        assert listed.json()["total"] == n
    await runtime.relay.drain()
    moves = sorted(
        (e.data["version_id"], e.data["from_stage"], e.data["to_stage"])
        for e in await stream_events(nc, "REGISTRY", "registry.model_version.transitioned")
        if e.data["model_id"] == model["id"]
    )
    assert moves == sorted(
        [
            (earlier["version"]["id"], "none", "production"),
            (earlier["version"]["id"], "production", "archived"),
            (later["version"]["id"], "none", "production"),
        ]
    )


def job_succeeded(model_id: str, job_id: uuid.UUID | None = None) -> CloudEvent:
    job_id = job_id or uuid.uuid4()
    data = JobSucceeded(
        job_id=job_id,
        name="train-fraud",
        project_id=uuid.uuid4(),
        run_id=f"run-{job_id.hex[:6]}",
        metrics={"auc": 0.93},
        artifact_uri="file:///tmp/model.pkl",
        register_model=RegisterModel(model_id=uuid.UUID(model_id)),
    )
    return CloudEvent.wrap(data, service="jobs", aggregate_id=job_id, actor="bob")


async def versions_of(client, model_id: str) -> list[dict]:
    return (await client.get(f"/models/{model_id}/versions")).json()["items"]


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_job_succeeded_registers_a_version_linked_to_its_run(client, nc, model):
    event = job_succeeded(model["id"])
    await nc.jetstream().publish(
        "jobs.job.succeeded", event.to_json(), headers={"Nats-Msg-Id": str(event.id)}
    )

    async def registered():
        return len(await versions_of(client, model["id"])) == 1

    await wait_until(registered)
    (version,) = await versions_of(client, model["id"])
    assert (
        version["run_id"],
        version["metrics"],
        version["artifact_uri"],
        version["created_by"],
    ) == (event.data["run_id"], {"auc": 0.93}, "file:///tmp/model.pkl", "bob")


async def test_a_redelivered_event_has_no_second_effect(client, nc, runtime, model):
    event = job_succeeded(model["id"])
    js = nc.jetstream()
    # The same event twice on the stream (a producer retry after the dedup window, say).
    acks = [
        await js.publish(
            "jobs.job.succeeded", event.to_json(), headers={"Nats-Msg-Id": f"{event.id}-{copy}"}
        )
        for copy in range(2)
    ]
    assert acks[1].seq > acks[0].seq  # both stored: a real second delivery of one event

    async def both_consumed():
        info = await js.consumer_info("JOBS", "registry-jobs-job-succeeded")
        return info.ack_floor.stream_seq >= acks[1].seq

    await wait_until(both_consumed)
    versions = await versions_of(client, model["id"])
    assert len(versions) == 1
    await runtime.relay.drain()  # whatever the dispatch has not published yet
    created = [
        e
        for e in await stream_events(nc, "REGISTRY", "registry.model_version.created")
        if e.data["model_id"] == model["id"]
    ]
    assert len(created) == 1


async def test_an_event_that_keeps_failing_goes_to_the_dead_letter_subject(nc, model, runtime):
    bad = job_succeeded(model["id"])
    payload = bad.model_dump(mode="json")
    payload["data"]["metrics"] = {"auc": "not a number"}  # the handler's parse fails every time
    raw = CloudEvent.model_validate(payload).to_json()
    await nc.jetstream().publish("jobs.job.succeeded", raw, headers={"Nats-Msg-Id": str(bad.id)})

    async def dead_lettered():
        return any(e.id == bad.id for e in await stream_events(nc, "DEADLETTER"))

    await wait_until(dead_lettered, timeout=15)
    async with runtime.sessionmaker() as s:
        applied = await s.scalar(select(func.count()).where(runtime.inbox.c.event_id == bad.id))
    assert applied == 0
