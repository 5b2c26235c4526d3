"""A transition is planned from what the registry process remembers of the version when it can
(one statement, no read), and what it remembers is never trusted: whatever changed behind its
back (another registry process, a deletion), the transition comes out as if planned from the
version as read."""

import uuid

import pytest

from services.registry import service, store
from tests.bus import stream_events
from tests.registry.conftest import new_versions, promote


@pytest.fixture
def reads(monkeypatch) -> list[bool]:
    """Each read of a version for a transition, as its `lock` argument."""
    seen: list[bool] = []
    read = store.version_for_transition

    async def counted(conn, version_id, *, lock):
        seen.append(lock)
        return await read(conn, version_id, lock=lock)

    monkeypatch.setattr(store, "version_for_transition", counted)
    return seen


@pytest.fixture
def elsewhere(registry_app, monkeypatch):
    """Runs requests as another registry process would: with its own memory of stages."""
    ours = registry_app.state.known_stages

    class Elsewhere:
        def __enter__(self) -> None:
            monkeypatch.setattr(registry_app.state, "known_stages", service.KnownStages())

        def __exit__(self, *exc_info: object) -> None:
            monkeypatch.setattr(registry_app.state, "known_stages", ours)

    return Elsewhere()


def moves(reply) -> list[tuple[str, str, str]]:
    return [(t["version_id"], t["from_stage"], t["to_stage"]) for t in reply.json()["transitions"]]


async def test_versions_this_process_created_and_moved_are_transitioned_without_a_read(
    client, model, reads
):
    first, second = await new_versions(client, model, 2)
    for version in (first, second):
        reply = await promote(client, version)
        assert reply.status_code == 200, reply.text
    assert reads == []
    assert moves(reply) == [
        (first["id"], "production", "archived"),
        (second["id"], "none", "production"),
    ]
    assert reply.json()["version"]["stage"] == "production"
    assert reply.json()["version"]["description"] == second["description"]


async def test_a_production_version_promoted_by_another_process_is_archived_all_the_same(
    client, nc, runtime, model, reads, elsewhere
):
    first, second = await new_versions(client, model, 2)
    with elsewhere:
        assert (await promote(client, first)).status_code == 200
    # This process still believes the model has no production version: its plan would only
    # promote `second`. The statement finds the model changed and writes nothing; the version
    # is read and the transition planned again.
    reply = await promote(client, second)
    assert reply.status_code == 200, reply.text
    assert reads == [False, False]  # the one made elsewhere (it knew nothing), and this one
    assert moves(reply) == [
        (first["id"], "production", "archived"),
        (second["id"], "none", "production"),
    ]
    production = await client.get(f"/models/{model['id']}/versions?stage=production")
    assert [v["id"] for v in production.json()["items"]] == [second["id"]]
    await runtime.relay.drain()
    published = [
        (e.data["version_id"], e.data["to_stage"], e.data["model_name"])
        for e in await stream_events(nc, "REGISTRY", "registry.model_version.transitioned")
        if e.data["model_id"] == model["id"]
    ]
    assert published == [
        (first["id"], "production", model["name"]),
        (first["id"], "archived", model["name"]),
        (second["id"], "production", model["name"]),
    ]


async def test_a_version_remembered_in_the_target_stage_but_moved_since_is_moved(
    client, model, reads, elsewhere
):
    (version,) = await new_versions(client, model, 1)
    assert (await promote(client, version)).status_code == 200
    with elsewhere:
        assert (await promote(client, version, "staging")).status_code == 200
    # Remembered as in production, so "already there"; the version as read says otherwise.
    reply = await promote(client, version)
    assert reply.status_code == 200, reply.text
    assert moves(reply) == [(version["id"], "staging", "production")]
    assert reads == [False, False]  # the one made elsewhere, and the one made here


async def test_a_version_deleted_since_it_was_remembered_is_not_found(client, model):
    (version,) = await new_versions(client, model, 1)
    assert (await client.delete(f"/models/versions/{version['id']}")).status_code == 204
    reply = await promote(client, version)
    assert reply.status_code == 404
    assert reply.json()["type"].endswith("/version-not-found")


async def test_a_version_already_in_the_stage_is_a_conflict_once_read(client, model, reads):
    (version,) = await new_versions(client, model, 1)
    assert (await promote(client, version, "staging")).status_code == 200
    reply = await promote(client, version, "staging")
    assert reply.status_code == 409
    assert reply.json()["type"].endswith("/stage-unchanged")
    assert reads == [False]  # remembered in staging: read before it is called a conflict


def test_memory_is_bounded_and_drops_what_was_written_longest_ago() -> None:
    known = service.KnownStages(limit=2)
    model_id = uuid.uuid4()
    known.registered(model_id)
    ids = [uuid.uuid4() for _ in range(3)]
    for number, version_id in enumerate(ids, start=1):
        known.created(
            {"id": version_id, "model_id": model_id, "version": str(number), "stage": "none"}
        )
    assert known.version(ids[0]) is None
    assert known.version(ids[2]) == {
        "id": ids[2],
        "model_id": model_id,
        "version": "3",
        "stage": "none",
        "production_version_id": None,
        "production_version": None,
    }
