"""The unit of work against the real database: statements sent through the ORM session and
straight through asyncpg are one transaction with the outbox rows (sent as literals with the
COMMIT), committed or rolled back together; a command that is one statement writes its event
in that statement."""

import asyncio
import uuid
from typing import ClassVar

import pytest
from sqlalchemy import String, Uuid, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert

from services.registry.models import RegisteredModel
from shared.db import UnitOfWork
from shared.events import CloudEvent, EventData
from shared.events.registry import ModelRegistered
from shared.outbox import OutboxMessage, events_written_by
from shared.statements import Statement

PROJECT = uuid.uuid4()


async def _rows(runtime, model_ids: list[uuid.UUID]) -> tuple[int, int]:
    """(models, outbox rows) for these model ids, read on a connection of its own."""
    async with runtime.connection() as conn:
        models = await conn.fetchval(
            "SELECT count(*) FROM registry.registered_models WHERE id = ANY($1::uuid[])", model_ids
        )
        events = await conn.fetchval(
            "SELECT count(*) FROM registry.outbox WHERE convert_from(payload, 'UTF8')::jsonb"
            " ->> 'subject' = ANY($1::text[])",
            [str(m) for m in model_ids],
        )
    return models, events


def _uow(runtime, dispatched: list[OutboxMessage] | None = None, *, begin: bool = True):
    """The service's unit of work with its committed events handed to `dispatched`, not to the
    relay: their rows stay in the outbox until a sweep takes them, seconds later, so a test
    reads them there (the relay removes a dispatched row within milliseconds)."""
    committed = dispatched.extend if dispatched is not None else None
    return UnitOfWork(runtime.engine, runtime.service, runtime.outbox, committed, begin=begin)


def _insert(uow, model_id: uuid.UUID, name: str, *, through_orm: bool):
    values = {"id": model_id, "project_id": PROJECT, "name": name, "created_by": "test"}
    uow.record(
        ModelRegistered(
            model_id=model_id,
            name=name,
            project_id=PROJECT,
            description=None,
            tags={},
            created_by="test",
        ),
        model_id,
    )
    if through_orm:
        uow.session.add(RegisteredModel(**values))  # flushed by the unit of work at commit
        return None
    return uow.conn.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
        " VALUES ($1, $2, $3, $4)",
        *values.values(),
    )


async def test_orm_and_driver_statements_commit_together_with_their_events(runtime):
    by_driver, by_orm = uuid.uuid4(), uuid.uuid4()
    async with _uow(runtime) as uow:
        await _insert(uow, by_driver, f"driver-{by_driver}", through_orm=False)
        _insert(uow, by_orm, f"orm-{by_orm}", through_orm=True)
        # Inside the transaction the session sees what asyncpg wrote, and the reverse.
        seen = await uow.session.scalar(
            text("SELECT count(*) FROM registry.registered_models WHERE id = :id"),
            {"id": by_driver},
        )
        assert seen == 1
        # Before the commit, nobody else does.
        assert await _rows(runtime, [by_driver]) == (0, 0)
    assert await _rows(runtime, [by_driver, by_orm]) == (2, 2)


async def test_an_error_inside_rolls_back_both_kinds_of_statement(runtime):
    by_driver, by_orm = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(RuntimeError, match="the command failed"):
        async with _uow(runtime) as uow:
            await _insert(uow, by_driver, f"driver-{by_driver}", through_orm=False)
            _insert(uow, by_orm, f"orm-{by_orm}", through_orm=True)
            await uow.session.flush()
            raise RuntimeError("the command failed")
    assert await _rows(runtime, [by_driver, by_orm]) == (0, 0)


async def test_a_failure_at_commit_time_leaves_nothing_and_the_pool_healthy(runtime):
    taken, clash = uuid.uuid4(), uuid.uuid4()
    name = f"taken-{taken}"
    async with _uow(runtime) as uow:
        await _insert(uow, taken, name, through_orm=False)
    with pytest.raises(Exception, match="uq_registered_models_project_id_name"):
        async with _uow(runtime) as uow:
            # The ORM insert only reaches the database at the unit of work's final flush.
            _insert(uow, clash, name, through_orm=True)
    assert await _rows(runtime, [taken, clash]) == (1, 1)
    await _assert_pool_healthy(runtime)


async def _assert_pool_healthy(runtime) -> None:
    """Every pooled connection is still usable: no transaction was left open on one."""
    for _ in range(runtime.settings.db_pool_size + 1):
        async with _uow(runtime) as uow:
            assert await uow.conn.fetchval("SELECT txid_current_if_assigned()") is None


async def test_a_command_whose_connection_is_lost_raises_its_own_error(runtime):
    # Its ROLLBACK fails too; the caller must still see why the command failed.
    model_id = uuid.uuid4()
    with pytest.raises(RuntimeError, match="the command failed"):
        async with _uow(runtime) as uow:
            await _insert(uow, model_id, f"lost-{model_id}", through_orm=False)
            backend = await uow.conn.fetchval("SELECT pg_backend_pid()")
            async with runtime.connection() as conn:
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", backend)
            raise RuntimeError("the command failed")
    assert await _rows(runtime, [model_id]) == (0, 0)
    await _assert_pool_healthy(runtime)


@pytest.mark.parametrize("through_orm", [False, True], ids=["driver", "orm"])
async def test_a_command_cancelled_mid_statement_ends_cancelled_and_leaves_nothing(
    runtime, through_orm
):
    # As when a service shuts down under a command: the cancellation must reach the caller (a
    # watcher loop that saw "connection is closed" instead took it for a failed step and kept
    # running), and what the command wrote must not stay, nor its connection in the pool.
    model_id = uuid.uuid4()
    marker = f"cancelled-{model_id}"
    stalled = f"SELECT pg_sleep(30), '{marker}'"

    async def command() -> None:
        async with _uow(runtime) as uow:
            await _insert(uow, model_id, marker, through_orm=False)
            if through_orm:
                await uow.session.execute(text(stalled))
            else:
                await uow.conn.execute(stalled)

    task = asyncio.create_task(command())
    async with runtime.connection() as conn:
        while not await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", stalled
        ):
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _rows(runtime, [model_id]) == (0, 0)
    await _assert_pool_healthy(runtime)


async def test_an_events_payload_reaches_the_outbox_byte_for_byte(runtime):
    # The outbox rows travel as literals in the COMMIT's message: no value may leave its quotes.
    model_id = uuid.uuid4()
    tricky = "it's \\' -- ); DROP TABLE registry.outbox; -- zoë \u2603"
    async with _uow(runtime) as uow:
        event = uow.record(
            ModelRegistered(
                model_id=model_id,
                name=tricky,
                project_id=PROJECT,
                description=tricky,
                tags={tricky: tricky},
                created_by="test",
            ),
            model_id,
        )
    async with runtime.connection() as conn:
        stored = await conn.fetchval("SELECT payload FROM registry.outbox WHERE id = $1", event.id)
    assert stored == event.to_json()
    assert CloudEvent.from_json(stored).data["name"] == tricky


class _Misnamed(EventData):
    subject: ClassVar[str] = "registry.model'); DELETE FROM registry.outbox; --"


async def test_an_event_whose_subject_is_not_a_dotted_name_commits_nothing(runtime):
    # A row waiting in the outbox (no stream takes its subject, so it stays): the misnamed
    # subject's DELETE must not reach it.
    waiting = uuid.uuid4()
    async with runtime.connection() as conn:
        await conn.execute(
            "INSERT INTO registry.outbox (id, subject, payload) VALUES ($1, 'nowhere.x', '{}')",
            waiting,
        )
    model_id = uuid.uuid4()
    try:
        with pytest.raises(ValueError, match="not an event subject"):
            async with _uow(runtime) as uow:
                await _insert(uow, model_id, f"misnamed-{model_id}", through_orm=False)
                uow.record(_Misnamed(), model_id)
        assert await _rows(runtime, [model_id]) == (0, 0)
        async with runtime.connection() as conn:
            assert await conn.fetchval("SELECT id FROM registry.outbox WHERE id = $1", waiting)
    finally:
        async with runtime.connection() as conn:
            await conn.execute("DELETE FROM registry.outbox WHERE id = $1", waiting)


def _one_statement(outbox) -> Statement:
    """A model insert that writes its event itself; the event's name is the statement's."""
    models = RegisteredModel.__table__
    model = (
        insert(models)
        .values(
            id=bindparam("id", type_=Uuid),
            project_id=bindparam("project_id", type_=Uuid),
            name=bindparam("name", type_=String),
            created_by=literal_column("'test'"),
        )
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
        .returning(models.c.id, func.upper(models.c.name).label("shouted"))
        .cte("model")
    )
    return Statement(
        select(*model.c).add_cte(events_written_by(outbox, model, {"name": "shouted"}))
    )


def _named(model_id: uuid.UUID, name: str) -> dict:
    return {"id": model_id, "project_id": PROJECT, "name": name}


def _registered(model_id: uuid.UUID, name: str) -> ModelRegistered:
    return ModelRegistered(
        model_id=model_id,
        name=name,
        project_id=PROJECT,
        description=None,
        tags={},
        created_by="test",
    )


async def test_a_one_statement_command_commits_with_its_event_filled_in_by_the_statement(runtime):
    model_id = uuid.uuid4()
    tricky = f"it's \\' \" -- ); zoë \u2603 {model_id}"
    dispatched: list[OutboxMessage] = []
    async with _uow(runtime, dispatched, begin=False) as uow:
        row = await uow.fetchrow_writing_events(
            _one_statement(runtime.outbox),
            _named(model_id, tricky),
            events=[(_registered(model_id, "placeholder"), model_id)],
            fill={"name": "shouted"},
        )
        assert row["shouted"] == tricky.upper()
        # Committed already, before the unit of work ends: no transaction was open.
        assert await _rows(runtime, [model_id]) == (1, 1)
    [message] = dispatched
    async with runtime.connection() as conn:
        stored = await conn.fetchval(
            "SELECT payload FROM registry.outbox WHERE id = $1", message.id
        )
    # The same event in both: the relay publishes the one, a sweep would publish the other.
    assert CloudEvent.from_json(stored) == CloudEvent.from_json(message.payload)
    assert CloudEvent.from_json(stored).data["name"] == tricky.upper()
    assert message.subject == "registry.model.registered"


async def test_a_one_statement_command_that_writes_nothing_records_no_event(runtime):
    model_id, clash = uuid.uuid4(), uuid.uuid4()
    name = f"once-{model_id}"
    dispatched: list[OutboxMessage] = []
    for key in (model_id, clash):
        async with _uow(runtime, dispatched, begin=False) as uow:
            await uow.fetchrow_writing_events(
                _one_statement(runtime.outbox),
                _named(key, name),
                events=[(_registered(key, name), key)],
                fill={"name": "shouted"},
            )
    assert await _rows(runtime, [model_id, clash]) == (1, 1)
    assert [m.subject for m in dispatched] == ["registry.model.registered"]


async def test_a_one_statement_command_that_found_a_transaction_open_fails_and_keeps_nothing(
    runtime,
):
    # As a connection handed over inside a transaction nobody here began would be: the
    # statement does not commit by itself, so the command must not answer as if it had.
    model_id = uuid.uuid4()
    dispatched: list[OutboxMessage] = []
    with pytest.raises(RuntimeError, match="nothing it wrote committed"):
        async with _uow(runtime, dispatched, begin=False) as uow:
            await uow.conn.execute("BEGIN")
            await uow.fetchrow_writing_events(
                _one_statement(runtime.outbox),
                _named(model_id, f"lost-{model_id}"),
                events=[(_registered(model_id, "x"), model_id)],
                fill={"name": "shouted"},
            )
    assert await _rows(runtime, [model_id]) == (0, 0)
    assert dispatched == []


async def test_a_unit_of_work_begun_after_a_one_statement_command_publishes_every_event(runtime):
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    dispatched: list[OutboxMessage] = []
    async with _uow(runtime, dispatched, begin=False) as uow:
        with pytest.raises(RuntimeError, match="begin"):
            uow.session  # noqa: B018 - an ORM session needs the transaction
        with pytest.raises(RuntimeError, match="begin"):
            uow.record(_registered(first, "x"), first)  # nothing would ever write it
        await uow.fetchrow_writing_events(
            _one_statement(runtime.outbox),
            _named(first, f"first-{first}"),
            events=[(_registered(first, "x"), first)],
            fill={"name": "shouted"},
        )
        await uow.begin()
        # Inside the transaction a statement's own events commit with it, as recorded ones do.
        await uow.fetchrow_writing_events(
            _one_statement(runtime.outbox),
            _named(second, f"second-{second}"),
            events=[(_registered(second, "x"), second)],
            fill={"name": "shouted"},
        )
        await _insert(uow, third, f"third-{third}", through_orm=False)
        assert await _rows(runtime, [first, second, third]) == (1, 1)  # the rest: not yet
    assert await _rows(runtime, [first, second, third]) == (3, 3)
    assert len(dispatched) == 3


async def test_events_a_statement_wrote_inside_a_transaction_roll_back_with_it(runtime):
    model_id = uuid.uuid4()
    dispatched: list[OutboxMessage] = []
    with pytest.raises(RuntimeError, match="the command failed"):
        async with _uow(runtime, dispatched) as uow:
            await uow.fetchrow_writing_events(
                _one_statement(runtime.outbox),
                _named(model_id, f"rolled-back-{model_id}"),
                events=[(_registered(model_id, "x"), model_id)],
                fill={"name": "shouted"},
            )
            raise RuntimeError("the command failed")
    assert await _rows(runtime, [model_id]) == (0, 0)
    assert dispatched == []
