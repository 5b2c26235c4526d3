"""Who is calling and what they may do, as the gateway vouches for it to the services.

The gateway authenticates a caller and forwards a short-lived credential it signed (an HS256
JWT in `X-Modelplane-Credential`) naming the caller's subject, platform role, project roles and
the projects their token is limited to. A service believes nothing else about who calls, and
decides itself what the caller may do with the data it owns (`Caller.require`).
"""

import hashlib
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

import jwt
from pydantic import SecretStr

from shared.errors import Forbidden, Unauthorized

CREDENTIAL_HEADER = "X-Modelplane-Credential"
ISSUER = "modelplane-gateway"
# A key every local process shares when MODELPLANE_INTERNAL_KEYS is not set (`make up`, tests).
# A deployment sets its own: anyone who knows this one can speak for the gateway.
LOCAL_INTERNAL_KEY = "modelplane-local-internal-key-not-for-production"
_ALGORITHM = "HS256"


class Role(StrEnum):
    """Each role may do what the ones before it may: viewer < editor < approver < admin."""

    VIEWER = "viewer"
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def covers(self, needed: "Role") -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.APPROVER: 3, Role.ADMIN: 4}


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller.

    `role` is the platform role, held in every project; `project_roles` the memberships;
    `projects` the projects the token is limited to (None: not limited), which bounds both.
    `token_id` is None for the bootstrap admin token and for services.
    """

    subject: str
    role: Role | None = None
    project_roles: Mapping[UUID, Role] = field(default_factory=dict)
    projects: frozenset[UUID] | None = None
    token_id: UUID | None = None

    def role_in(self, project_id: UUID) -> Role | None:
        """The caller's role in a project; None when they may not see it."""
        if self.projects is not None and project_id not in self.projects:
            return None
        member = self.project_roles.get(project_id)
        if self.role is None or (member is not None and member.covers(self.role)):
            return member
        return self.role

    def may(self, project_id: UUID, needed: Role) -> bool:
        role = self.role_in(project_id)
        return role is not None and role.covers(needed)

    def require(self, project_id: UUID, needed: Role) -> None:
        """403 problem+json naming the role needed, unless the caller holds it in the project."""
        if not self.may(project_id, needed):
            held = self.role_in(project_id)
            raise Forbidden(
                f"{self.subject!r} is {held.value if held else 'not a member'} in project "
                f"{project_id}; this needs {needed.value!r} or above",
                required_role=needed.value,
                project_id=str(project_id),
            )

    @property
    def is_platform_admin(self) -> bool:
        """Platform-wide powers (tokens, projects, GPU types) need an unlimited admin token."""
        return self.role == Role.ADMIN and self.projects is None

    def require_platform_admin(self) -> None:
        if not self.is_platform_admin:
            raise Forbidden(
                f"{self.subject!r} is not a platform admin; this needs 'admin' on a token not "
                "limited to projects",
                required_role=Role.ADMIN.value,
            )

    @property
    def visible_projects(self) -> frozenset[UUID] | None:
        """The projects the caller may see; None: every one."""
        if self.role is not None:
            return self.projects
        members = frozenset(self.project_roles)
        return members if self.projects is None else members & self.projects

    def sees(self, project_id: UUID) -> bool:
        return self.role_in(project_id) is not None

    def scope(self, project_id: UUID | None) -> Collection[UUID] | None:
        """What a list asked for `project_id` (None: all) may show: None for every project, else
        the projects to show (empty when the caller sees none of them)."""
        visible = self.visible_projects
        if project_id is not None:
            return (project_id,) if self.sees(project_id) else ()
        return visible


class CredentialRequired(Unauthorized):
    kind, title = "credential-required", "The gateway's credential is required"


class InvalidCredential(Unauthorized):
    kind, title = "invalid-credential", "The gateway's credential is not valid"


def key_id(key: str) -> str:
    """A key's name in a credential's header: not the key, but enough to pick it among several."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class CredentialSigner:
    """The gateway's half: signs a caller into a credential with the first configured key."""

    def __init__(self, keys: Sequence[SecretStr | str], lifetime_seconds: float = 60.0) -> None:
        if not keys:
            raise ValueError("at least one internal key is needed to sign credentials")
        self._key = _plain(keys[0])
        self._headers = {"kid": key_id(self._key)}
        self.lifetime_seconds = lifetime_seconds

    def sign(self, caller: Caller, *, lifetime_seconds: float | None = None) -> str:
        now = int(time.time())
        lifetime = self.lifetime_seconds if lifetime_seconds is None else lifetime_seconds
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": caller.subject,
            "iat": now,
            "exp": now + int(lifetime),
            "role": caller.role.value if caller.role else None,
            "roles": {str(p): r.value for p, r in caller.project_roles.items()},
            "projects": None if caller.projects is None else sorted(map(str, caller.projects)),
            "tid": str(caller.token_id) if caller.token_id else None,
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM, headers=self._headers)


class CredentialVerifier:
    """A service's half: the caller a credential names, if any configured key signed it and it
    has not expired. Verified credentials are remembered until they expire (the gateway reuses
    one for many requests), so most requests cost a dictionary lookup."""

    def __init__(self, keys: Sequence[SecretStr | str], remembered: int = 10_000) -> None:
        if not keys:
            raise ValueError("at least one internal key is needed to verify credentials")
        self._keys = {key_id(k): k for k in map(_plain, keys)}
        self._remembered = remembered
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, credential: str | None) -> Caller:
        """The caller, or 401 (`Unauthorized`)."""
        if not credential:
            raise CredentialRequired(
                f"a {CREDENTIAL_HEADER} header signed by the gateway is required; call the "
                "gateway, not the service"
            )
        known = self._verified.get(credential)
        if known is not None and known[1] > time.time():
            return known[0]
        try:
            kid = jwt.get_unverified_header(credential).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise jwt.InvalidSignatureError("signed with a key this service does not know")
            claims = jwt.decode(
                credential,
                key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
            caller = _caller(claims)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidCredential(f"the {CREDENTIAL_HEADER} is not valid: {exc}") from exc
        if len(self._verified) >= self._remembered:
            self._verified.clear()
        self._verified[credential] = (caller, float(claims["exp"]))
        return caller


def _caller(claims: Mapping[str, Any]) -> Caller:
    role = claims.get("role")
    projects = claims.get("projects")
    token_id = claims.get("tid")
    return Caller(
        subject=str(claims["sub"]),
        role=Role(role) if role is not None else None,
        project_roles={UUID(p): Role(r) for p, r in (claims.get("roles") or {}).items()},
        projects=None if projects is None else frozenset(map(UUID, projects)),
        token_id=UUID(token_id) if token_id else None,
    )


def _plain(key: SecretStr | str) -> str:
    return key.get_secret_value() if isinstance(key, SecretStr) else key
