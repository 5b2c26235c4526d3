"""The registry's statements run on the plans Postgres chooses by itself, kept good by their
indexes and by statistics (ANALYZE, as autovacuum runs it): a hot statement settles on a
generic plan rather than being planned at every call, a read of one model reads that model's
rows, and a plan made while the tables were empty does not outlive their growth."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from functools import partial

import asyncpg
import httpx
import pytest

from services.registry import store
from services.registry.app import create_app
from services.registry.domain import ModelStage
from services.registry.settings import RegistrySettings
from shared.db import connect_raw, create_engine
from shared.driver import driver_connection
from tests.credentials import known_project
from tests.registry.conftest import ScratchDatabase, client_of, new_versions, promote

PROJECT = uuid.uuid4()  # the project the registries of these tests take to exist

TRANSITION_STATEMENT = "%WITH guard AS MATERIALIZED%"


async def seed(scratch: ScratchDatabase, models: int, versions: int) -> list[uuid.UUID]:
    """`models` models of `versions` versions each, in stage none, counted, each with one
    move in its history, and analyzed (as autovacuum would after as many writes); the models'
    ids."""
    ids = [uuid.uuid4() for _ in range(models)]
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by,"
        " version_counter) SELECT m, gen_random_uuid(), 'seeded-' || m, 'test', $2"
        " FROM unnest($1::uuid[]) AS m",
        ids,
        versions,
    )
    await scratch.execute(  # with a history each: versions are moved before they are seeded
        "WITH v AS (INSERT INTO registry.model_versions (id, model_id, version, stage,"
        " created_by) SELECT gen_random_uuid(), m, g::text, 'none', 'test'"
        " FROM unnest($1::uuid[]) AS m, generate_series(1, $2::int) AS g"
        " RETURNING id, model_id)"
        " INSERT INTO registry.model_version_transitions (id, version_id, model_id, from_stage,"
        " to_stage, transitioned_by)"
        " SELECT gen_random_uuid(), v.id, v.model_id, 'staging', 'none', 'test' FROM v",
        ids,
        versions,
    )
    await scratch.execute(
        "INSERT INTO registry.version_counts (model_id, stage, n)"
        " SELECT m, s, CASE WHEN s = 'none' THEN $2::bigint ELSE 0 END"
        " FROM unnest($1::uuid[]) AS m,"
        " unnest(ARRAY['none', 'staging', 'production', 'archived']) AS s",
        ids,
        versions,
    )
    await scratch.execute("ANALYZE")
    return ids


async def test_hot_statements_run_on_a_generic_plan_once_postgres_has_tried_five(scratch, nats_url):
    # Postgres plans a prepared statement for its parameters five times, then keeps the
    # generic plan unless it is estimated dearer than those: the transition's was (its arrays,
    # of one or two changes, taken for ten rows each) once a registry held a hundred models of
    # a hundred versions, so it was planned anew at every call, which cost more than running it.
    await scratch.upgrade("head")
    model_ids = await seed(scratch, models=100, versions=100)
    app = create_app(RegistrySettings(database_url=scratch.url, nats_url=nats_url))
    project = known_project(app)
    calls = 24  # spread over the pool's connections: past five runs on one of them
    async with app.router.lifespan_context(app), client_of(app) as client:
        for n, model_id in enumerate(model_ids[:calls]):
            r = await client.post("/models", json={"name": f"new-{n}", "project_id": project})
            assert r.status_code == 201
            [version] = await new_versions(client, {"id": model_id}, 1)
            assert (await promote(client, version)).status_code == 200
            for read in (
                f"/models/{model_id}/versions/{version['version']}",
                f"/models/stages/production/latest?model_id={model_id}",
                f"/models/{model_id}/versions?limit=100",
                f"/models/{model_id}",
            ):
                assert (await client.get(read)).status_code == 200
        # Plans are each connection's own: those of every connection the pool holds.
        async with contextlib.AsyncExitStack() as held:
            plans = [
                plan
                for _ in range(4)
                for plan in await (
                    await held.enter_async_context(app.state.runtime.connection())
                ).fetch(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE generic_plans + custom_plans > 5"
                )
            ]
    assert len({p["statement"] for p in plans}) >= 7, plans
    assert any(TRANSITION_STATEMENT.strip("%") in p["statement"] for p in plans)
    replanned = [p["statement"] for p in plans if p["custom_plans"] > 5]
    assert replanned == []


@pytest.mark.parametrize("read", ["page", "latest", "history"])
async def test_a_read_of_one_models_versions_reads_that_models_rows_only(scratch, read):
    # A plan kept for any model or version must not walk every row newest first, which behind
    # a larger model with newer versions (or a version with a longer history) reads all of
    # those to find this one's.
    await scratch.upgrade("head")
    small, large = uuid.uuid4(), uuid.uuid4()
    for model_id, size in ((small, 100), (large, 20_000)):
        await scratch.execute(
            "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
            " VALUES ($1, $2, $3, 'test')",
            model_id,
            uuid.uuid4(),
            f"model-{size}",
        )
        await scratch.execute(
            "INSERT INTO registry.model_versions (id, model_id, version, stage, created_by)"
            " SELECT gen_random_uuid(), $1, g::text, 'none', 'test'"
            " FROM generate_series(1, $2::int) AS g",
            model_id,
            size,
        )
        await scratch.execute(  # the history of each model's first version
            "INSERT INTO registry.model_version_transitions (id, version_id, model_id,"
            " from_stage, to_stage, transitioned_by)"
            " SELECT gen_random_uuid(), v.id, v.model_id, 'none', 'staging', 'test'"
            " FROM registry.model_versions v, generate_series(1, $2::int)"
            " WHERE v.model_id = $1 AND v.version = '1'",
            model_id,
            size,
        )
    await scratch.execute("ANALYZE registry.model_versions, registry.model_version_transitions")
    [first] = await scratch.fetch(
        "SELECT id FROM registry.model_versions WHERE model_id = $1 AND version = '1'", small
    )
    reads = {
        "page": (
            partial(store.list_versions, model_id=small, stage=None, limit=100, before_seq=None),
            "%LATERAL%",
            f"'{small}', 100",
        ),
        "latest": (
            partial(store.latest_in_stage, model_id=small, stage=ModelStage.NONE),
            "%ORDER BY v.seq DESC%LIMIT 1",
            f"'{small}', 'none'",
        ),
        "history": (
            partial(store.list_transitions, version_id=first["id"], limit=100, offset=0),
            "%ORDER BY %transitions.seq DESC%",
            f"'{first['id']}', 100, 0",
        ),
    }
    call, statement, arguments = reads[read]

    async with registry_connection(scratch) as conn:
        for _ in range(6):  # past Postgres's five custom plans: the plan it then keeps
            assert await call(conn)
        name = await conn.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE $1", statement
        )
        [plan] = await conn.fetchval(  # json: read back by the engine's codec
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({arguments})"
        )
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 50, plan


@pytest.mark.parametrize("read", ["page", "search"])
async def test_every_projects_models_are_paged_and_searched_by_name_without_reading_them_all(
    scratch, read
):
    # Migration 0009: a page of models in name order walks the (name, id) index; `?name=`,
    # a substring of the name whatever its case (ILIKE '%…%'), is found by its trigrams.
    # Both as store.find_models words them.
    await scratch.upgrade("head")
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
        " SELECT gen_random_uuid(), gen_random_uuid(), 'model-' || md5(g::text), 'test'"
        " FROM generate_series(1, 20000) AS g"
        " UNION ALL SELECT gen_random_uuid(), gen_random_uuid(), 'Churn-XGB', 'test'"
    )
    # As autovacuum would: until then new names wait in the GIN index's pending list (at
    # most `gin_pending_list_limit`, 4 MB), which every search reads through.
    await scratch.execute("VACUUM ANALYZE registry.registered_models")
    statement, arguments = {
        "page": ("ORDER BY name, id LIMIT $1 OFFSET $2", (1, 0)),
        "search": ("WHERE name ILIKE $1 ORDER BY name, id LIMIT 50", ("%churn-x%",)),
    }[read]
    statement = f"SELECT * FROM registry.registered_models {statement}"
    async with registry_connection(scratch) as conn:
        assert [r["name"] for r in await conn.fetch(statement, *arguments)] == ["Churn-XGB"]
        [plan] = await conn.fetchval(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *arguments
        )
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 20, plan


@contextlib.asynccontextmanager
async def registry_connection(scratch: ScratchDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the scratch database as the registry's pool makes them."""
    engine = create_engine(scratch.url, pool_size=1)
    try:
        async with driver_connection(engine) as conn:
            yield conn
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def registry_on(url: str, nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A registry of its own on the database at `url`, stopped (its connections closed) on
    leaving."""
    app = create_app(RegistrySettings(database_url=url, nats_url=nats_url))
    known_project(app, PROJECT)
    async with app.router.lifespan_context(app), client_of(app) as client:
        yield client


async def rows_read_whole(scratch: ScratchDatabase) -> dict[str, int]:
    """Rows read by sequential scans of each of the registry's tables so far, once every other
    session has ended: a backend reports its counts as it exits."""
    conn = await connect_raw(scratch.url)
    try:
        async with asyncio.timeout(10):
            while await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ):
                await asyncio.sleep(0.05)
        rows = await conn.fetch(
            "SELECT relname, seq_tup_read FROM pg_stat_user_tables WHERE schemaname = 'registry'"
        )
    finally:
        await conn.close()
    return {row["relname"]: row["seq_tup_read"] for row in rows}


async def use(client: httpx.AsyncClient, project: str, rounds: int) -> None:
    """What the bench does, each statement past Postgres's five custom plans."""
    for n in range(rounds):
        reply = await client.post("/models", json={"name": f"m{n}", "project_id": project})
        assert reply.status_code == 201, reply.text
        model = reply.json()
        versions = await new_versions(client, model, 3)
        for version in versions * 2:
            assert (await promote(client, version)).status_code == 200
        for read in (
            f"/models/{model['id']}",
            f"/models/{model['id']}/versions/{versions[0]['version']}",
            f"/models/stages/production/latest?model_id={model['id']}",
            f"/models/{model['id']}/versions?limit=100",
            f"/models/versions/{versions[0]['id']}/transitions",
        ):
            assert (await client.get(read)).status_code == 200


async def test_plans_made_on_empty_tables_do_not_outlive_the_tables_growth(scratch, nats_url):
    # A new registry plans its statements on empty tables, where reading a table whole costs
    # least, and Postgres keeps a statement's generic plan per connection. Analyzed once they
    # have grown (as autovacuum does after so many changes), the tables' statements are
    # planned again: none reads them whole, as none has an index to serve it.
    await scratch.upgrade("head")
    app = create_app(RegistrySettings(database_url=scratch.url, nats_url=nats_url))
    before, after = known_project(app), known_project(app)
    models, versions = 2_000, 10
    async with app.router.lifespan_context(app), client_of(app) as client:
        await use(client, before, rounds=3)
        await seed(scratch, models=models, versions=versions)  # and ANALYZE
        await use(client, after, rounds=3)
    read = await rows_read_whole(scratch)
    assert read["registered_models"] < models, read
    assert read["model_versions"] < models * versions, read
    assert read["version_counts"] < models * 4, read
    assert read["model_version_transitions"] < models * versions, read
