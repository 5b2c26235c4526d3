"""The registry's statements are planned once per connection. Postgres's default re-plans a
prepared statement for its parameters whenever the generic plan looks dearer, which for the
transition statement (arrays unnested: ten rows assumed) it does once a registry holds a
hundred models; planning it then cost more than running it (bench/README.md). Planned once,
each is planned for its keys: a plan made while the tables were empty must not read them whole
once they have grown."""

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


async def test_transitions_run_on_a_plan_made_once_not_one_made_per_call(client, runtime, model):
    versions = await new_versions(client, model, 8)
    for version in versions:
        assert (await promote(client, version)).status_code == 200
    # The pool hands out the connection used last: the one that ran the transitions.
    async with runtime.connection() as conn:
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE $1",
            TRANSITION_STATEMENT,
        )
    assert plans is not None
    assert plans["custom_plans"] == 0
    assert plans["generic_plans"] >= len(versions)


@pytest.mark.parametrize("read", ["page", "latest", "history"])
async def test_a_read_of_one_models_versions_reads_that_models_rows_only(scratch, read):
    # Each statement is planned once, for any model or version (as the registry plans them):
    # that plan must not walk every row newest first, which behind a larger model with newer
    # versions (or a version with a longer history) reads all of those to find this one's.
    await scratch.upgrade("head")
    small, large = uuid.uuid4(), uuid.uuid4()
    for model_id, size in ((small, 100), (large, 20_000)):
        await scratch.execute(
            "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
            " VALUES ($1, $2, $3, 'test')",
            model_id, uuid.uuid4(), f"model-{size}",
        )  # fmt: skip
        await scratch.execute(
            "INSERT INTO registry.model_versions (id, model_id, version, stage, created_by)"
            " SELECT gen_random_uuid(), $1, g::text, 'none', 'test'"
            " FROM generate_series(1, $2::int) AS g",
            model_id, size,
        )  # fmt: skip
        await scratch.execute(  # the history of each model's first version
            "INSERT INTO registry.model_version_transitions (id, version_id, model_id,"
            " from_stage, to_stage, transitioned_by)"
            " SELECT gen_random_uuid(), v.id, v.model_id, 'none', 'staging', 'test'"
            " FROM registry.model_versions v, generate_series(1, $2::int)"
            " WHERE v.model_id = $1 AND v.version = '1'",
            model_id, size,
        )  # fmt: skip
    await scratch.execute("ANALYZE registry.model_versions, registry.model_version_transitions")
    [first] = await scratch.fetch(
        "SELECT id FROM registry.model_versions WHERE model_id = $1 AND version = '1'", small
    )
    reads = {
        "page": (partial(store.list_versions, model_id=small, stage=None, limit=100,
                         before_seq=None), "%LATERAL%", f"'{small}', 100"),
        "latest": (partial(store.latest_in_stage, model_id=small, stage=ModelStage.NONE),
                   "%ORDER BY v.seq DESC LIMIT 1%", f"'{small}', 'none'"),
        "history": (partial(store.list_transitions, version_id=first["id"], limit=100, offset=0),
                    "%ORDER BY seq DESC%", f"'{first['id']}', 100, 0"),
    }  # fmt: skip
    call, statement, arguments = reads[read]

    async with registry_connection(scratch) as conn:
        assert await call(conn)
        name = await conn.fetchval(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE $1", statement
        )
        [plan] = await conn.fetchval(  # json: read back by the engine's codec
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({arguments})"
        )
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 50, plan


async def test_a_statement_that_reads_a_table_whole_is_not_compiled_at_each_run(scratch):
    # A statement no index serves, here a search of descriptions (which the API does not
    # offer): with sequential scans disabled, Postgres 15-17 price its plan at the cost of a
    # disabled path, past every JIT threshold, and would compile it (130 ms) at every run.
    # (18 counts disabled paths apart from cost.)
    await scratch.upgrade("head")
    async with registry_connection(scratch) as conn:
        [plan] = await conn.fetchval(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM registry.registered_models"
            " WHERE description ILIKE $1 LIMIT 100",
            "%bench%",
        )
    assert _node_types(plan["Plan"]) >= {"Seq Scan"}, plan
    assert "JIT" not in plan, plan


@pytest.mark.parametrize("read", ["page", "search"])
async def test_every_projects_models_are_paged_and_searched_by_name_without_reading_them_all(
    scratch, read
):
    # Migration 0009: a page of models in name order walks the (name, id) index; `?name=`,
    # a substring of the name whatever its case (ILIKE '%…%'), is found by its trigrams.
    # Both as store.find_models words them, planned once for any arguments.
    await scratch.upgrade("head")
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
        " SELECT gen_random_uuid(), gen_random_uuid(), 'model-' || md5(g::text), 'test'"
        " FROM generate_series(1, 20000) AS g"
        " UNION ALL SELECT gen_random_uuid(), gen_random_uuid(), 'Churn-XGB', 'test'"
    )  # fmt: skip
    # As autovacuum would: until then new names wait in the GIN index's pending list (at
    # most `gin_pending_list_limit`, 4 MB), which every search reads through.
    await scratch.execute("VACUUM ANALYZE registry.registered_models")
    statement, arguments = {
        "page": ("ORDER BY name, id LIMIT $1 OFFSET $2", (1, 0)),
        "search": ("WHERE name ILIKE $1 ORDER BY name, id LIMIT 50", ("%churn-x%",)),
    }[read]  # fmt: skip
    statement = f"SELECT * FROM registry.registered_models {statement}"
    async with registry_connection(scratch) as conn:
        assert [r["name"] for r in await conn.fetch(statement, *arguments)] == ["Churn-XGB"]
        [plan] = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}",
                                     *arguments)  # fmt: skip
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 20, plan


def _node_types(node: dict) -> set[str]:
    return {node["Node Type"]}.union(*(_node_types(n) for n in node.get("Plans", ())))


@contextlib.asynccontextmanager
async def registry_connection(scratch: ScratchDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the scratch database set up as the registry's are (`generic_plans`)."""
    engine = create_engine(scratch.url, pool_size=1, generic_plans=True)
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


async def whole_table_reads(scratch: ScratchDatabase) -> dict[str, int]:
    """Sequential scans of each of the registry's tables so far, once every other session has
    ended: a backend reports its counts as it exits."""
    conn = await connect_raw(scratch.url)
    try:
        async with asyncio.timeout(10):
            while await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ):  # fmt: skip
                await asyncio.sleep(0.05)
        rows = await conn.fetch(  # but Alembic's one row, read at each start-up
            "SELECT relname, seq_scan FROM pg_stat_user_tables"
            " WHERE schemaname = 'registry' AND relname <> 'alembic_version'"
        )
    finally:
        await conn.close()
    return {row["relname"]: row["seq_scan"] for row in rows}


async def outbox_count(scratch: ScratchDatabase) -> int:
    conn = await connect_raw(scratch.url)
    try:
        await conn.execute("SET enable_seqscan = off")  # counted by index: not a table read
        return await conn.fetchval("SELECT count(*) FROM registry.outbox")
    finally:
        await conn.close()


async def test_a_registry_started_on_empty_tables_reads_no_table_whole(scratch, nats_url):
    # Each statement is planned once per connection (again after a vacuum or an analyze): on
    # a new registry, or on the outbox just after a vacuum, while the tables are empty, when
    # reading a table whole costs least. That plan would stay as the table grows: the relay's
    # removal of published events read every page of the outbox (thousands, of rows removed
    # since the vacuum) twenty times a second, and every transition read every model.
    async with registry_on(scratch.url, nats_url):
        pass  # its migrations applied
    before = await whole_table_reads(scratch)

    async with registry_on(scratch.url, nats_url) as client:
        for n in range(2):
            reply = await client.post("/models", json={"name": f"m{n}", "project_id": str(PROJECT)})
            assert reply.status_code == 201, reply.text
            model = reply.json()
            versions = await new_versions(client, model, 3)
            for version in versions * 2:
                assert (await promote(client, version)).status_code == 200
            for read in (
                f"/models/{model['id']}/versions/{versions[0]['version']}",
                f"/models/stages/production/latest?model_id={model['id']}",
                f"/models/{model['id']}/versions?limit=100",
            ):
                assert (await client.get(read)).status_code == 200
        async with asyncio.timeout(10):
            while await outbox_count(scratch):  # the relay has published and removed them
                await asyncio.sleep(0.05)

    assert await whole_table_reads(scratch) == before
