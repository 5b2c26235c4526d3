"""Who may do what in the registry: the role each call needs in its model's project. The
caller's roles come from the gateway's credential (shared/auth.py); the rules are here, where
the data is understood: reading needs a viewer, writing an editor, production an approver
(service.request_transition, under the promotion policy), a policy a project admin."""

from collections.abc import Awaitable, Callable
from uuid import UUID

from services.registry import store
from shared.auth import Caller, Role
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime


class Access:
    """Checks a caller's role in the project of a model or version. Which project each is in
    is read once and remembered: a model never moves to another project (bounded: when full,
    it starts afresh)."""

    def __init__(
        self, runtime: ServiceRuntime, projects: ProjectDirectory, limit: int = 100_000
    ) -> None:
        self.projects = projects
        self._runtime = runtime
        self._limit = limit
        self._of_model: dict[UUID, UUID] = {}
        self._of_version: dict[UUID, UUID] = {}
        self._of_request: dict[UUID, UUID] = {}

    async def to_register(self, caller: Caller, project_id: UUID) -> None:
        caller.require(project_id, Role.EDITOR)
        await self.projects.require(project_id, caller)

    async def to_model(self, caller: Caller, model_id: UUID, role: Role) -> UUID | None:
        """The model's project. Nothing for a model that does not exist: the call answers its
        own 404."""
        project = await self._project(self._of_model, model_id, store.project_of_model)
        if project is not None:
            caller.require(project, role)
        return project

    async def to_version(self, caller: Caller, version_id: UUID, role: Role) -> UUID | None:
        project = await self._project(self._of_version, version_id, store.project_of_version)
        if project is not None:
            caller.require(project, role)
        return project

    async def to_request(self, caller: Caller, request_id: UUID, role: Role) -> None:
        """A promotion request's project, as a version's."""
        project = await self._project(self._of_request, request_id, store.project_of_request)
        if project is not None:
            caller.require(project, role)

    async def _project(
        self,
        known: dict[UUID, UUID],
        key: UUID,
        read: Callable[..., Awaitable[UUID | None]],
    ) -> UUID | None:
        project = known.get(key)
        if project is None:
            async with self._runtime.connection() as conn:
                project = await read(conn, key)
            if project is not None:
                if len(known) >= self._limit:
                    known.clear()
                known[key] = project
        return project
