"""The registry's statements are planned once per connection. Postgres's default re-plans a
prepared statement for its parameters whenever the generic plan looks dearer, which for the
transition statement (arrays unnested: ten rows assumed) it does once a registry holds a
hundred models; planning it then cost more than running it (bench/README.md)."""

import uuid

from services.registry import store
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


async def test_a_page_of_a_models_versions_reads_that_models_rows_only(scratch):
    # The statement is planned once, for any model (as the registry plans it): that plan must
    # not walk every model's versions newest first, which behind a larger model with newer
    # versions reads all of those to find a page of this one's.
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
    await scratch.execute("ANALYZE registry.model_versions")

    engine = create_engine(scratch.url, pool_size=1, generic_plans=True)
    try:
        async with driver_connection(engine) as conn:
            total, page = await store.list_versions(
                conn, small, stage=None, limit=100, before_seq=None
            )  # fmt: skip
            assert (total, len(page)) == (0, 100)  # counts untouched: written past the registry
            name = await conn.fetchval(
                "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%LATERAL%'"
            )
            [plan] = await conn.fetchval(  # json: read back by the engine's codec
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {name}('{small}', 100)"
            )
    finally:
        await engine.dispose()
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert pages < 50, plan
