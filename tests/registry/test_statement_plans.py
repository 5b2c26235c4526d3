"""The registry's statements are planned once per connection. Postgres's default re-plans a
prepared statement for its parameters whenever the generic plan looks dearer, which for the
transition statement (arrays unnested: ten rows assumed) it does once a registry holds a
hundred models; planning it then cost more than running it (bench/README.md)."""

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
