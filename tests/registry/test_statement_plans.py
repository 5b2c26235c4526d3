"""The registry's statements are planned once per connection. Postgres's default re-plans a
prepared statement for its parameters whenever the generic plan looks dearer, which for the
transition statement (arrays unnested: ten rows assumed) it does once a registry holds a
hundred models; planning it then cost more than running it (bench/README.md)."""

import uuid
from functools import partial

import pytest

from services.registry import store
from services.registry.domain import ModelStage
from shared.db import create_engine
from shared.driver import driver_connection
from tests.registry.test_transition_planning import new_versions, promote

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

    engine = create_engine(scratch.url, pool_size=1, generic_plans=True)
    try:
        async with driver_connection(engine) as conn:
            assert await call(conn)
            name = await conn.fetchval(
                "SELECT name FROM pg_prepared_statements WHERE statement LIKE $1", statement
            )
            [plan] = await conn.fetchval(  # json: read back by the engine's codec
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}({arguments})"
            )
    finally:
        await engine.dispose()
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 50, plan
