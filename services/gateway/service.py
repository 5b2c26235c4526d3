"""The gateway's use cases: API tokens, projects and their memberships, integration configs.
Each runs in one unit of work and records the events it causes; api.py parses and shapes."""

from typing import Any
from uuid import UUID

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from services.gateway import store
from services.gateway.auth import issue_token
from services.gateway.domain import check_backend
from services.gateway.errors import (
    DuplicateProjectName,
    IntegrationConfigNotFound,
    MemberNotFound,
    ProjectNotFound,
    TokenNotFound,
)
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.environments import Env
from shared.events.gateway import IntegrationConfigChanged, ProjectCreated
from shared.integrations import Concern
from shared.projects import UnknownProject


def project_not_found(project_id: UUID) -> ProjectNotFound:
    return ProjectNotFound(f"there is no project {project_id}")


async def create_token(
    uow: UnitOfWork,
    caller: Caller,
    *,
    subject: str,
    role: Role | None,
    projects: list[UUID] | None,
) -> tuple[str, Row]:
    """A new token (its plaintext, shown once, and its row). Platform admins only."""
    caller.require_platform_admin()
    if projects and (missing := await store.missing_projects(uow.session, projects)):
        raise UnknownProject(
            f"there is no project {', '.join(sorted(map(str, missing)))}",
            project_ids=sorted(map(str, missing)),
        )
    return await issue_token(uow.session, subject=subject, role=role, projects=projects)


async def list_tokens(session: AsyncSession, caller: Caller) -> list[Row]:
    caller.require_platform_admin()
    return await store.list_tokens(session)


async def revoke_token(uow: UnitOfWork, caller: Caller, token_id: UUID) -> None:
    caller.require_platform_admin()
    if not await store.revoke_token(uow.session, token_id):
        raise TokenNotFound(f"there is no token {token_id}")


async def create_project(
    uow: UnitOfWork, caller: Caller, *, name: str, description: str | None
) -> Row:
    """A new project, announced to the services (ProjectCreated). Platform admins only."""
    caller.require_platform_admin()
    row = await store.add_project(
        uow.session, name=name, description=description, created_by=caller.subject
    )
    if row is None:
        raise DuplicateProjectName(f"a project named {name!r} already exists")
    uow.record(
        ProjectCreated(
            project_id=row.id, name=row.name, description=row.description, created_by=row.created_by
        ),
        aggregate_id=row.id,
    )
    return row


async def list_projects(
    session: AsyncSession, caller: Caller, *, limit: int, offset: int
) -> tuple[list[Row], int]:
    """The projects the caller may see."""
    return await store.list_projects(
        session, visible=caller.visible_projects, limit=limit, offset=offset
    )


async def get_project(session: AsyncSession, caller: Caller, project_id: UUID) -> Row:
    """The project, if the caller may see it: one they may not is as good as absent (404)."""
    row = await store.get_project(session, project_id) if caller.sees(project_id) else None
    if row is None:
        raise project_not_found(project_id)
    return row


async def list_members(session: AsyncSession, caller: Caller, project_id: UUID) -> list[Row]:
    await get_project(session, caller, project_id)
    caller.require(project_id, Role.ADMIN)
    return await store.list_members(session, project_id)


async def put_member(
    uow: UnitOfWork, caller: Caller, project_id: UUID, subject: str, role: Role
) -> tuple[Row, bool]:
    """Give a subject a role in a project (created, or replaced: True when created)."""
    await get_project(uow.session, caller, project_id)
    caller.require(project_id, Role.ADMIN)
    return await store.put_member(
        uow.session,
        project_id=project_id,
        subject=subject,
        role=role.value,
        updated_by=caller.subject,
    )


async def remove_member(uow: UnitOfWork, caller: Caller, project_id: UUID, subject: str) -> None:
    await get_project(uow.session, caller, project_id)
    caller.require(project_id, Role.ADMIN)
    if not await store.delete_member(uow.session, project_id, subject):
        raise MemberNotFound(f"{subject!r} is not a member of project {project_id}")


async def put_integration_config(
    uow: UnitOfWork,
    caller: Caller,
    env: Env,
    concern: Concern,
    backend: str,
    settings: dict[str, Any],
) -> tuple[Row, bool]:
    """Choose the backend of a concern in an env; the services follow the event. Admins only."""
    caller.require_platform_admin()
    check_backend(concern, backend)
    row, created = await store.put_integration_config(
        uow.session,
        env=env.value,
        concern=concern.value,
        backend=backend,
        settings=settings,
        updated_by=caller.subject,
    )
    uow.record(
        IntegrationConfigChanged(
            env=row.env,
            concern=row.concern,
            backend=row.backend,
            settings=row.settings,
            changed_by=row.updated_by,
            changed_at=row.updated_at,
        ),
        aggregate_id=f"{row.env}/{row.concern}",
    )
    return row, created


async def list_integration_configs(
    session: AsyncSession, caller: Caller, env: Env | None
) -> list[Row]:
    caller.require_platform_admin()
    return await store.list_integration_configs(session, env and env.value)


async def get_integration_config(
    session: AsyncSession, caller: Caller, env: Env, concern: Concern
) -> Row:
    caller.require_platform_admin()
    row = await store.get_integration_config(session, env.value, concern.value)
    if row is None:
        raise IntegrationConfigNotFound(
            f"{env.value} has no integration config for {concern.value}; its services use "
            "their own default"
        )
    return row
