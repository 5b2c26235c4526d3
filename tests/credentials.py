"""Credentials as the gateway signs them, for tests that call a service directly."""

from uuid import UUID, uuid4

import httpx

from shared.auth import CREDENTIAL_HEADER, LOCAL_INTERNAL_KEY, Caller, CredentialSigner, Role

SIGNER = CredentialSigner([LOCAL_INTERNAL_KEY])


def credential_headers(
    subject: str = "alice@example.com",
    role: Role | None = Role.ADMIN,
    project_roles: dict[UUID, Role] | None = None,
    projects: set[UUID] | None = None,
    lifetime_seconds: float | None = None,
) -> dict[str, str]:
    """The header the gateway sends for this caller (by default a platform admin), signed with
    the local default key every test service verifies with."""
    caller = Caller(
        subject=subject,
        role=role,
        project_roles=project_roles or {},
        projects=None if projects is None else frozenset(projects),
    )
    return {CREDENTIAL_HEADER: SIGNER.sign(caller, lifetime_seconds=lifetime_seconds)}


def known_project(app, project_id: UUID | None = None) -> str:
    """A project that the service served by `app` takes to exist, as if the gateway had said so
    (shared/projects.py); its id as the API writes it."""
    project_id = project_id or uuid4()
    app.state.projects.learned(project_id)
    return str(project_id)


class GatewayCredential(httpx.Auth):
    """httpx authentication that signs a fresh credential for each request, as the gateway
    does, so that a client kept for a whole session never sends an expired one."""

    def __init__(self, subject: str = "alice@example.com", role: Role | None = Role.ADMIN) -> None:
        self.subject = subject
        self.role = role

    def auth_flow(self, request: httpx.Request):
        if CREDENTIAL_HEADER not in request.headers:  # a test's own, to be refused, goes as is
            request.headers.update(credential_headers(self.subject, self.role))
        yield request
