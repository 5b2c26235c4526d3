"""The gateway's queries: SQLAlchemy Core on its tables, run on the session the caller passes.

The house's default style (STYLE.md habit 12): one handle per function (`uow.session`, or a
read's own session) and none commits; duplicates are found by `ON CONFLICT DO NOTHING`.
The idempotency keys' queries sit on a POST's hot path: `shared.statements.Statement`s on
asyncpg's connection, each statement its own transaction.
"""

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
from sqlalchemy import (
    Float,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import ColumnElement

from services.gateway.models import (
    api_tokens,
    idempotency_keys,
    integration_configs,
    memberships,
    projects,
)
from shared.statements import Statement

_TOKEN_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.subject,
    api_tokens.c.role,
    api_tokens.c.project_ids,
    api_tokens.c.created_at,
    api_tokens.c.revoked_at,
)


async def add_token(
    session: AsyncSession,
    *,
    subject: str,
    role: str | None,
    project_ids: list[UUID] | None,
    token_hash: str,
) -> Row:
    values = {
        "id": uuid4(),
        "subject": subject,
        "role": role,
        "project_ids": project_ids,
        "token_hash": token_hash,
    }
    return (
        await session.execute(insert(api_tokens).values(values).returning(*_TOKEN_COLUMNS))
    ).one()


async def find_active_token(session: AsyncSession, token_hash: str) -> Row | None:
    query = select(*_TOKEN_COLUMNS).where(
        api_tokens.c.token_hash == token_hash, api_tokens.c.revoked_at.is_(None)
    )
    return (await session.execute(query)).one_or_none()


async def roles_of_subject(session: AsyncSession, subject: str) -> list[Row]:
    """The subject's memberships: (project_id, role) rows."""
    query = select(memberships.c.project_id, memberships.c.role).where(
        memberships.c.subject == subject
    )
    return list((await session.execute(query)).all())


async def list_members(session: AsyncSession, project_id: UUID) -> list[Row]:
    query = (
        select(*memberships.c)
        .where(memberships.c.project_id == project_id)
        .order_by(memberships.c.subject)
    )
    return list((await session.execute(query)).all())


async def get_member(session: AsyncSession, project_id: UUID, subject: str) -> Row | None:
    query = select(*memberships.c).where(
        memberships.c.project_id == project_id, memberships.c.subject == subject
    )
    return (await session.execute(query)).one_or_none()


async def put_member(
    session: AsyncSession, *, project_id: UUID, subject: str, role: str, updated_by: str
) -> tuple[Row, bool]:
    """The membership after the change, and True when it was created rather than replaced."""
    new = upsert(memberships).values(
        project_id=project_id, subject=subject, role=role, updated_by=updated_by
    )
    stmt = new.on_conflict_do_update(
        index_elements=[memberships.c.project_id, memberships.c.subject],
        set_={
            "role": new.excluded.role,
            "updated_by": new.excluded.updated_by,
            "updated_at": func.clock_timestamp(),
        },
    ).returning(*memberships.c, literal_column("xmax = 0").label("created"))
    row = (await session.execute(stmt)).one()
    return row, bool(row.created)


async def delete_member(session: AsyncSession, project_id: UUID, subject: str) -> bool:
    deleted = await session.execute(
        delete(memberships)
        .where(memberships.c.project_id == project_id, memberships.c.subject == subject)
        .returning(memberships.c.subject)
    )
    return deleted.one_or_none() is not None


async def list_tokens(session: AsyncSession) -> list[Row]:
    query = select(*_TOKEN_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)
    return list((await session.execute(query)).all())


async def revoke_token(session: AsyncSession, token_id: UUID) -> bool:
    """Revoke the token; False when there is no such token. Revoking twice keeps the first time."""
    exists = await session.scalar(select(api_tokens.c.id).where(api_tokens.c.id == token_id))
    if exists is None:
        return False
    await session.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return True


async def add_project(
    session: AsyncSession, *, name: str, description: str | None, created_by: str
) -> Row | None:
    """The new project, or None when a project already has that name (nothing written)."""
    stmt = (
        upsert(projects)
        .values(id=uuid4(), name=name, description=description, created_by=created_by)
        .on_conflict_do_nothing(index_elements=[projects.c.name])
        .returning(*projects.c)
    )
    return (await session.execute(stmt)).one_or_none()


async def get_project(session: AsyncSession, project_id: UUID) -> Row | None:
    query = select(*projects.c).where(projects.c.id == project_id)
    return (await session.execute(query)).one_or_none()


async def project_exists(session: AsyncSession, project_id: UUID) -> bool:
    query = select(projects.c.id).where(projects.c.id == project_id)
    return await session.scalar(query) is not None


async def missing_projects(session: AsyncSession, project_ids: Collection[UUID]) -> set[UUID]:
    """Those of `project_ids` that name no project."""
    query = select(projects.c.id).where(projects.c.id.in_(list(project_ids)))
    return set(project_ids) - set((await session.scalars(query)).all())


async def list_projects(
    session: AsyncSession, *, visible: Collection[UUID] | None, limit: int, offset: int
) -> tuple[list[Row], int]:
    """A page of the projects in `visible` (None: every project), oldest first, and their count."""
    where = [] if visible is None else [projects.c.id.in_(list(visible))]
    total = await session.scalar(select(func.count()).select_from(projects).where(*where))
    query = (
        select(*projects.c)
        .where(*where)
        .order_by(projects.c.created_at, projects.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).all()), total or 0


async def put_integration_config(
    session: AsyncSession,
    *,
    env: str,
    concern: str,
    backend: str,
    settings: dict[str, Any],
    updated_by: str,
) -> tuple[Row, bool]:
    """The config after the change, and True when it was created rather than replaced."""
    # clock_timestamp(), not now(): evaluated under the row's lock, so later changes of one
    # config always carry later times (consumers keep the newest).
    new = upsert(integration_configs).values(
        env=env,
        concern=concern,
        backend=backend,
        settings=settings,
        updated_by=updated_by,
        updated_at=func.clock_timestamp(),
    )
    stmt = new.on_conflict_do_update(
        index_elements=[integration_configs.c.env, integration_configs.c.concern],
        set_={
            "backend": new.excluded.backend,
            "settings": new.excluded.settings,
            "updated_by": new.excluded.updated_by,
            "updated_at": func.clock_timestamp(),
        },
    ).returning(
        # xmax is 0 on a row this statement inserted, the locker's id on one it updated.
        *integration_configs.c,
        literal_column("xmax = 0").label("created"),
    )
    row = (await session.execute(stmt)).one()
    return row, row.created


async def get_integration_config(session: AsyncSession, env: str, concern: str) -> Row | None:
    query = select(*integration_configs.c).where(
        integration_configs.c.env == env, integration_configs.c.concern == concern
    )
    return (await session.execute(query)).one_or_none()


async def list_integration_configs(session: AsyncSession, env: str | None) -> list[Row]:
    query = select(*integration_configs.c).order_by(
        integration_configs.c.env, integration_configs.c.concern
    )
    if env is not None:
        query = query.where(integration_configs.c.env == env)
    return list((await session.execute(query)).all())


_keys = idempotency_keys.c
_SECOND: ColumnElement[Any] = literal_column("interval '1 second'")


def _seconds(name: str) -> ColumnElement[Any]:
    return _SECOND * bindparam(name, type_=Float)


_claiming = upsert(idempotency_keys).values(
    subject=bindparam("subject"),
    key=bindparam("key"),
    claim=bindparam("claim"),
    method=bindparam("method"),
    target=bindparam("target"),
    created_at=func.now(),
)
# Taken over only when the row has had its time: a reply kept past `ttl`, or a claim held past
# `lock` (its gateway died mid-request).
_CLAIM_KEY = Statement(
    _claiming.on_conflict_do_update(
        index_elements=[_keys.subject, _keys.key],
        set_={
            "claim": _claiming.excluded.claim,
            "method": _claiming.excluded.method,
            "target": _claiming.excluded.target,
            "request_hash": null(),
            "status": null(),
            "headers": null(),
            "body": null(),
            "created_at": func.now(),
        },
        where=_keys.created_at
        < func.now()
        - case((_keys.status.is_(None), _seconds("lock_seconds")), else_=_seconds("ttl_seconds")),
    ).returning(_keys.claim)
)
_FIND_KEY = Statement(
    select(
        _keys.method, _keys.target, _keys.request_hash, _keys.status, _keys.headers, _keys.body
    ).where(_keys.subject == bindparam("subject"), _keys.key == bindparam("key"))
)
_COMPLETE_KEY = Statement(
    update(idempotency_keys)
    .where(
        _keys.subject == bindparam("subject"),
        _keys.key == bindparam("key"),
        _keys.claim == bindparam("claim"),
    )
    .values(
        request_hash=bindparam("request_hash"),
        status=bindparam("status"),
        headers=bindparam("headers"),
        body=bindparam("body"),
    )
)
_RELEASE_KEY = Statement(
    delete(idempotency_keys).where(
        _keys.subject == bindparam("subject"),
        _keys.key == bindparam("key"),
        _keys.claim == bindparam("claim"),
    )
)
_PRUNE_KEYS = Statement(
    delete(idempotency_keys).where(_keys.created_at < func.now() - _seconds("ttl_seconds"))
)


async def claim_idempotency_key(
    conn: asyncpg.Connection,
    *,
    subject: str,
    key: str,
    claim: UUID,
    method: str,
    target: str,
    ttl_seconds: float,
    lock_seconds: float,
) -> bool:
    """Take the key for this request (new, or past its time); False when another holds it."""
    claimed = await _CLAIM_KEY.fetchval(
        conn,
        subject=subject,
        key=key,
        claim=claim,
        method=method,
        target=target,
        ttl_seconds=ttl_seconds,
        lock_seconds=lock_seconds,
    )
    return claimed is not None


async def find_idempotency_key(
    conn: asyncpg.Connection, *, subject: str, key: str
) -> asyncpg.Record | None:
    return await _FIND_KEY.fetchrow(conn, subject=subject, key=key)


async def complete_idempotency_key(
    conn: asyncpg.Connection,
    *,
    subject: str,
    key: str,
    claim: UUID,
    request_hash: bytes,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes | None,
) -> None:
    """Keep the first reply; `body` None: it held a secret, and only its status is kept."""
    await _COMPLETE_KEY.execute(
        conn,
        subject=subject,
        key=key,
        claim=claim,
        request_hash=request_hash,
        status=status,
        headers=orjson.dumps(headers).decode(),
        body=body,
    )


async def release_idempotency_key(
    conn: asyncpg.Connection, *, subject: str, key: str, claim: UUID
) -> None:
    await _RELEASE_KEY.execute(conn, subject=subject, key=key, claim=claim)


async def prune_idempotency_keys(conn: asyncpg.Connection, *, ttl_seconds: float) -> int:
    """Delete the keys older than `ttl_seconds`; how many went."""
    done = await _PRUNE_KEYS.execute(conn, ttl_seconds=ttl_seconds)
    return int(done.rsplit(" ", 1)[-1])
