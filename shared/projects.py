"""Which projects exist, for a service that takes a project id in a body.

The gateway owns projects but does not read request bodies, so the service checks the id."""

from uuid import UUID

import httpx

from shared.auth import CREDENTIAL_HEADER, Caller, CredentialSigner
from shared.errors import InvalidInput, ServiceUnavailable

_ASK_SECONDS = 5.0


class UnknownProject(InvalidInput):
    kind, title = "unknown-project", "No such project"


class ProjectDirectory:
    """Remembers each project seen to exist (projects are never deleted) and asks the gateway
    (`GET /internal/projects/{id}`, with a credential the service signs) about any other. A
    project the caller is a member of exists: memberships are kept only for projects."""

    def __init__(self, gateway_url: str, signer: CredentialSigner, service: str) -> None:
        self._url = gateway_url.rstrip("/")
        self._signer = signer
        self._service = Caller(subject=f"service:{service}")
        self._known: set[UUID] = set()

    def learned(self, project_id: UUID) -> None:
        """The project exists (a ProjectCreated seen, say)."""
        self._known.add(project_id)

    async def require(self, project_id: UUID, caller: Caller | None = None) -> None:
        """Nothing when the project exists; 422 `unknown-project` when it does not."""
        if project_id in self._known or (caller and project_id in caller.project_roles):
            return
        headers = {CREDENTIAL_HEADER: self._signer.sign(self._service)}
        try:
            async with httpx.AsyncClient(timeout=_ASK_SECONDS) as client:
                reply = await client.get(
                    f"{self._url}/internal/projects/{project_id}", headers=headers
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"cannot ask the gateway whether project {project_id} exists: {exc}",
                service="gateway",
            ) from exc
        if reply.status_code == 404:
            raise UnknownProject(
                f"there is no project {project_id}; create it with POST /api/v1/projects",
                project_id=str(project_id),
            )
        if reply.status_code != 200:
            raise ServiceUnavailable(
                f"the gateway answered {reply.status_code} about project {project_id}",
                service="gateway",
            )
        self._known.add(project_id)
