"""The serving service's queries: SQLAlchemy from models.py on `uow.session`, and `Statement`s.

STYLE.md habit 12 with its hot-path variant: what runs for every registry event (the model's
lock, the kept copy of a version) is `Statement`s on `uow.conn`; the rest uses `uow.session`.
One handle per function, and none commits: the unit of work does.
"""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy import bindparam, delete, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.serving.domain import DeploymentState
from services.serving.models import (
    GpuTypeCopy,
    IntegrationConfig,
    ModelVersionCopy,
    ServingDeployment,
    ServingEndpoint,
)
from shared.integration_configs import keep_newest
from shared.statements import Statement

# Endpoints


_LOCK_MODEL = Statement(select(func.pg_advisory_xact_lock(bindparam("key"))))


async def lock_model(conn: asyncpg.Connection, model_id: UUID) -> None:
    """Serialise the changes about one model until the transaction ends: an endpoint created
    while a version of its model is promoted sees the promotion, or the promotion sees it."""
    await _LOCK_MODEL.execute(conn, key=int.from_bytes(model_id.bytes[:8], "big", signed=True))


async def insert_endpoint(session: AsyncSession, values: dict[str, Any]) -> ServingEndpoint | None:
    """The new endpoint, or None when its project already has one of that name."""
    stmt = (
        insert(ServingEndpoint)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
        .returning(ServingEndpoint)
    )
    return (await session.scalars(stmt)).one_or_none()


async def get_endpoint(session: AsyncSession, endpoint_id: UUID) -> ServingEndpoint | None:
    return await session.get(ServingEndpoint, endpoint_id)


async def lock_endpoint(session: AsyncSession, endpoint_id: UUID) -> ServingEndpoint | None:
    """The endpoint, locked: every change to its deployments is made holding it."""
    stmt = select(ServingEndpoint).where(ServingEndpoint.id == endpoint_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def list_endpoints(
    session: AsyncSession, projects: Collection[UUID] | None
) -> Sequence[ServingEndpoint]:
    """The endpoints of `projects` (None: of every project)."""
    stmt = select(ServingEndpoint).order_by(ServingEndpoint.created_at, ServingEndpoint.id)
    if projects is not None:
        stmt = stmt.where(ServingEndpoint.project_id.in_(list(projects)))
    return (await session.scalars(stmt)).all()


async def endpoints_following(
    session: AsyncSession, model_id: UUID, stage: str
) -> Sequence[ServingEndpoint]:
    stmt = (
        select(ServingEndpoint)
        .where(
            ServingEndpoint.model_id == model_id,
            ServingEndpoint.follow_stage == stage,
            ServingEndpoint.retired.is_(False),
        )
        .order_by(ServingEndpoint.id)
        .with_for_update()
    )
    return (await session.scalars(stmt)).all()


# Deployments


async def insert_deployment(session: AsyncSession, values: dict[str, Any]) -> ServingDeployment:
    deployment = ServingDeployment(**values)
    session.add(deployment)
    await session.flush()
    await session.refresh(deployment)
    return deployment


async def get_deployment(session: AsyncSession, deployment_id: UUID) -> ServingDeployment | None:
    return await session.get(ServingDeployment, deployment_id)


async def deployments_of(session: AsyncSession, endpoint_id: UUID) -> Sequence[ServingDeployment]:
    stmt = (
        select(ServingDeployment)
        .where(ServingDeployment.endpoint_id == endpoint_id)
        .order_by(ServingDeployment.created_at, ServingDeployment.id)
    )
    return (await session.scalars(stmt)).all()


async def unretired_deployments(session: AsyncSession) -> Sequence[ServingDeployment]:
    """What the reconciler looks after: every deployment not yet retired, oldest first."""
    stmt = (
        select(ServingDeployment)
        .where(ServingDeployment.state != DeploymentState.RETIRED.value)
        .order_by(ServingDeployment.created_at, ServingDeployment.id)
    )
    return (await session.scalars(stmt)).all()


# Local copies of other services' facts


def _keep_version(update: Sequence[str]) -> Statement:
    """Insert a version, or update only the columns `update` names of the one kept; returns
    whether an endpoint follows the stage the version is now in."""
    columns = ("version_id", "model_id", "model_name", "version", "stage", "artifact_uri")
    upsert = insert(ModelVersionCopy).values(
        {**{name: bindparam(name) for name in columns}, "updated_at": literal_column("now()")}
    )
    kept = (
        upsert.on_conflict_do_update(
            index_elements=["version_id"], set_={name: upsert.excluded[name] for name in update}
        )
        .returning(ModelVersionCopy.model_id, ModelVersionCopy.stage)
        .cte("kept")
    )
    followed = exists().where(
        ServingEndpoint.model_id == kept.c.model_id,
        ServingEndpoint.follow_stage == kept.c.stage,
        ServingEndpoint.retired.is_(False),
    )
    return Statement(select(followed.label("followed")).select_from(kept))


_KEEP_CREATED_VERSION = _keep_version(("model_name", "version", "artifact_uri"))
_KEEP_VERSION_STAGE = _keep_version(("stage", "updated_at"))


async def keep_created_version(conn: asyncpg.Connection, **version: Any) -> bool:
    """Keep a new version (its stage as kept, if its move was seen first); whether an endpoint
    follows its stage."""
    return await _KEEP_CREATED_VERSION.fetchval(conn, **version)


async def keep_version_stage(conn: asyncpg.Connection, **version: Any) -> bool:
    """Keep the stage a version moved to (the rest as known, if its creation is yet unseen);
    whether an endpoint follows that stage."""
    return await _KEEP_VERSION_STAGE.fetchval(conn, **version)


async def get_model_version(session: AsyncSession, version_id: UUID) -> ModelVersionCopy | None:
    return await session.get(ModelVersionCopy, version_id)


async def version_in_stage(
    session: AsyncSession, model_id: UUID, stage: str
) -> ModelVersionCopy | None:
    """The version of the model in `stage`, the latest moved there when the copy holds several."""
    stmt = (
        select(ModelVersionCopy)
        .where(ModelVersionCopy.model_id == model_id, ModelVersionCopy.stage == stage)
        .order_by(ModelVersionCopy.updated_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).one_or_none()


async def delete_model_version(session: AsyncSession, version_id: UUID) -> None:
    await session.execute(delete(ModelVersionCopy).where(ModelVersionCopy.version_id == version_id))


async def put_gpu_type(
    session: AsyncSession, env: str, gpu_type_id: str, enabled: bool, node_label: str | None
) -> None:
    stmt = insert(GpuTypeCopy).values(
        env=env, id=gpu_type_id, enabled=enabled, node_label=node_label
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["env", "id"], set_={"enabled": enabled, "node_label": node_label}
    )
    await session.execute(stmt)


async def delete_gpu_type(session: AsyncSession, env: str, gpu_type_id: str) -> None:
    await session.execute(
        delete(GpuTypeCopy).where(GpuTypeCopy.env == env, GpuTypeCopy.id == gpu_type_id)
    )


async def enabled_gpu_types(session: AsyncSession, env: str) -> dict[str, GpuTypeCopy]:
    stmt = select(GpuTypeCopy).where(GpuTypeCopy.env == env, GpuTypeCopy.enabled.is_(True))
    return {option.id: option for option in (await session.scalars(stmt)).all()}


async def put_integration_config(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Keep the change unless a newer one of the same (env, concern) is kept already."""
    return await keep_newest(session, IntegrationConfig, values)


async def get_integration_config(
    session: AsyncSession, env: str, concern: str
) -> IntegrationConfig | None:
    return await session.get(IntegrationConfig, (env, concern))


def touch(entity: Any, now: datetime, **changes: Any) -> None:
    """Set fields of a loaded row and its `updated_at`; the unit of work flushes them."""
    for key, value in changes.items():
        setattr(entity, key, value)
    entity.updated_at = now
