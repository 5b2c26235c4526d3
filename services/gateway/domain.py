"""Who may do what: roles, the actions they permit, and which action a registry call is.

Pure Python, no I/O. A token's role applies platform-wide in this version.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared.errors import Forbidden, InvalidInput
from shared.integrations import BACKENDS, Concern


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"


class Action(StrEnum):
    READ = "read"
    WRITE = "write"
    PROMOTE_TO_PRODUCTION = "promote-to-production"
    MANAGE_TOKENS = "manage-tokens"
    MANAGE_GPU_TYPES = "manage-gpu-types"
    MANAGE_INTEGRATIONS = "manage-integrations"


_RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.APPROVER: 3, Role.ADMIN: 4}

# The least role that may perform each action; every higher role may too.
MINIMUM_ROLE = {
    Action.READ: Role.VIEWER,
    Action.WRITE: Role.EDITOR,
    Action.PROMOTE_TO_PRODUCTION: Role.APPROVER,
    Action.MANAGE_TOKENS: Role.ADMIN,
    Action.MANAGE_GPU_TYPES: Role.ADMIN,
    Action.MANAGE_INTEGRATIONS: Role.ADMIN,
}

PRODUCTION_STAGE = "production"
_TRANSITION_PATH = re.compile(r"^models/versions/[^/]+/transition/?$")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def permits(role: Role, action: Action) -> bool:
    return _RANK[role] >= _RANK[MINIMUM_ROLE[action]]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `token_id` is None for the bootstrap admin token."""

    subject: str
    role: Role
    token_id: UUID | None = None

    def require(self, action: Action) -> None:
        if not permits(self.role, action):
            raise Forbidden(
                f"role {self.role.value!r} may not {action.value}; "
                f"it needs {MINIMUM_ROLE[action].value!r} or above",
                required_role=MINIMUM_ROLE[action].value,
            )


def is_transition(method: str, path: str) -> bool:
    """`POST models/versions/{id}/transition`, relative to `/api/v1/registry/`."""
    return method == "POST" and _TRANSITION_PATH.match(path) is not None


def is_model_registration(method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/") == "models"


def registry_action(method: str, path: str, target_stage: str | None = None) -> Action:
    """The action a call to the registry performs; `target_stage` is a transition's `stage`."""
    if method in _READ_METHODS:
        return Action.READ
    if (
        is_transition(method, path)
        and isinstance(target_stage, str)
        and target_stage.strip().lower() == PRODUCTION_STAGE
    ):
        return Action.PROMOTE_TO_PRODUCTION
    return Action.WRITE


def is_job_submission(method: str, path: str) -> bool:
    """`POST jobs`, relative to `/api/v1/`."""
    return method == "POST" and path.rstrip("/") == "jobs"


def jobs_action(method: str, path: str) -> Action:
    """The action a call to the jobs service performs (`jobs...` or `gpu-types...`)."""
    if method in _READ_METHODS:
        return Action.READ
    if path.startswith("gpu-types"):
        return Action.MANAGE_GPU_TYPES
    return Action.WRITE


def default_action(method: str) -> Action:
    """The action a call to a service with no rules of its own performs."""
    return Action.READ if method in _READ_METHODS else Action.WRITE


def check_backend(concern: Concern, backend: str) -> None:
    """An IntegrationConfig names one of the backends that serve its concern."""
    allowed = BACKENDS[concern]
    if backend not in allowed:
        raise InvalidInput(
            f"{concern.value} has no backend {backend!r}; it is one of {', '.join(allowed)}",
            kind="unknown-integration-backend",
            allowed=list(allowed),
        )
