"""Credentials as the gateway signs them, for tests that call a service directly."""

from uuid import UUID

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
    caller = Caller(subject=subject, role=role, project_roles=project_roles or {},
                    projects=None if projects is None else frozenset(projects))  # fmt: skip
    return {CREDENTIAL_HEADER: SIGNER.sign(caller, lifetime_seconds=lifetime_seconds)}
