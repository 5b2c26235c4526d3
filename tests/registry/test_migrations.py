"""The registry's migrations build exactly the tables models.py declares, carry existing data
forward, and the constraints they make hold."""

import uuid

import asyncpg
import pytest

from services.registry.models import metadata
from tests.migrations import schema_differences
from tests.registry.conftest import ScratchDatabase


async def test_the_migrated_schema_matches_the_models(registry_app, database_url: str) -> None:
    # `registry_app` started the service, which applied its migrations.
    assert await schema_differences(database_url, metadata) == []


async def test_0004_names_each_models_production_version_and_gives_it_every_count_row(
    scratch: ScratchDatabase,
) -> None:
    await scratch.upgrade("0003")
    serving, idle = uuid.uuid4(), uuid.uuid4()
    live, retired = uuid.uuid4(), uuid.uuid4()
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
        " VALUES ($1, $3, 'serving', 'a'), ($2, $3, 'idle', 'a')",
        serving,
        idle,
        uuid.uuid4(),
    )
    await scratch.execute(
        "INSERT INTO registry.model_versions (id, model_id, version, stage, created_by)"
        " VALUES ($1, $3, '1', 'production', 'a'), ($2, $3, '2', 'archived', 'a')",
        live,
        retired,
        serving,
    )

    await scratch.upgrade("head")

    models = {
        r["id"]: (r["production_version_id"], r["production_version"])
        for r in await scratch.fetch("SELECT * FROM registry.registered_models")
    }
    counts = {
        (r["model_id"], r["stage"]): r["n"]
        for r in await scratch.fetch("SELECT * FROM registry.version_counts")
    }
    assert models == {serving: (live, "1"), idle: (None, None)}
    stages = ("none", "staging", "production", "archived")
    assert counts == {
        **{(idle, stage): 0 for stage in stages},
        **{(serving, stage): 0 for stage in stages},
        (serving, "production"): 1,
        (serving, "archived"): 1,
    }
    # And back: the triggers count again.
    await scratch.downgrade("0003")
    await scratch.execute(
        "INSERT INTO registry.model_versions (id, model_id, version, stage, created_by)"
        " VALUES ($1, $2, '1', 'none', 'a')",
        uuid.uuid4(),
        idle,
    )
    counted = await scratch.fetch(
        "SELECT n FROM registry.version_counts WHERE model_id = $1 AND stage = 'none'", idle
    )
    assert [r["n"] for r in counted] == [1]


async def test_0006_keeps_the_events_still_to_publish_and_drops_the_published(
    scratch: ScratchDatabase,
) -> None:
    await scratch.upgrade("0005")
    published, waiting = uuid.uuid4(), uuid.uuid4()
    await scratch.execute(
        "INSERT INTO registry.outbox (id, subject, payload, published_at)"
        " VALUES ($1, 'registry.a', 'a', now()), ($2, 'registry.b', 'b', NULL)",
        published,
        waiting,
    )

    await scratch.upgrade("0006")
    rows = [tuple(r) for r in await scratch.fetch("SELECT * FROM registry.outbox")]
    assert [row[1:4] for row in rows] == [(waiting, "registry.b", b"b")]
    assert len(rows[0]) == 5  # seq, id, subject, payload, created_at: no mark

    # And back: what is left is what was not published.
    await scratch.downgrade("0005")
    left = await scratch.fetch("SELECT id, published_at FROM registry.outbox")
    assert [tuple(r) for r in left] == [(waiting, None)]


async def test_0008_keeps_the_events_waiting_as_never_refused(scratch: ScratchDatabase) -> None:
    await scratch.upgrade("0007")
    waiting = uuid.uuid4()
    await scratch.execute(
        "INSERT INTO registry.outbox (id, subject, payload) VALUES ($1, 'registry.a', 'a')", waiting
    )

    await scratch.upgrade("0008")
    rows = await scratch.fetch(
        "SELECT id, payload, attempts, last_error, retry_at FROM registry.outbox"
    )
    assert [tuple(r) for r in rows] == [(waiting, b"a", 0, None, None)]

    await scratch.downgrade("0007")
    left = await scratch.fetch("SELECT * FROM registry.outbox")
    assert [tuple(r)[1:4] for r in left] == [(waiting, "registry.a", b"a")]
    assert len(left[0]) == 5


async def test_the_database_refuses_a_second_production_version_when_a_statement_ends(
    client, runtime, model
) -> None:
    versions = [
        (await client.post(f"/models/{model['id']}/versions", json={})).json()["id"]
        for _ in range(2)
    ]
    ids = [uuid.UUID(v) for v in versions]
    update = "UPDATE registry.model_versions SET stage = $2 WHERE id = ANY($1::uuid[])"
    async with runtime.connection() as conn:
        await conn.execute(update, ids[:1], "production")
        with pytest.raises(asyncpg.ExclusionViolationError):
            await conn.execute(update, ids[1:], "production")
        # One statement may archive the one and promote the other, whatever its row order.
        await conn.execute(
            "UPDATE registry.model_versions SET stage = CASE WHEN id = $1 THEN 'archived'"
            " ELSE 'production' END WHERE id = ANY($2::uuid[])",
            ids[0],
            ids,
        )
        stages = dict(
            await conn.fetch(
                "SELECT id, stage FROM registry.model_versions WHERE id = ANY($1::uuid[])", ids
            )
        )
    assert stages == {ids[0]: "archived", ids[1]: "production"}
