"""Roles and what each may do: pure rules, no I/O."""

import pytest

from services.gateway.domain import (
    Action,
    Principal,
    Role,
    check_backend,
    permits,
    registry_action,
)
from shared.errors import Forbidden, InvalidInput
from shared.integrations import Concern

ALLOWED = {
    Role.VIEWER: {Action.READ},
    Role.EDITOR: {Action.READ, Action.WRITE},
    Role.APPROVER: {Action.READ, Action.WRITE, Action.PROMOTE_TO_PRODUCTION},
    Role.ADMIN: set(Action),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_each_role_may_do_exactly_its_actions(role: Role, action: Action) -> None:
    assert permits(role, action) is (action in ALLOWED[role])


def test_a_principal_without_the_role_is_forbidden_and_told_which_role_is_needed() -> None:
    with pytest.raises(Forbidden) as raised:
        Principal("ann", Role.EDITOR).require(Action.PROMOTE_TO_PRODUCTION)
    assert raised.value.status == 403
    assert raised.value.extensions["required_role"] == "approver"
    Principal("ann", Role.APPROVER).require(Action.PROMOTE_TO_PRODUCTION)


@pytest.mark.parametrize(
    ("method", "path", "stage", "action"),
    [
        ("GET", "models", None, Action.READ),
        ("HEAD", "models/abc", None, Action.READ),
        ("POST", "models", None, Action.WRITE),
        ("PATCH", "models/abc", None, Action.WRITE),
        ("DELETE", "models/abc", None, Action.WRITE),
        ("POST", "models/versions/v1/transition", "staging", Action.WRITE),
        ("POST", "models/versions/v1/transition", "production", Action.PROMOTE_TO_PRODUCTION),
        ("POST", "models/versions/v1/transition", "Production", Action.PROMOTE_TO_PRODUCTION),
        ("POST", "models/versions/v1/transition/", "production", Action.PROMOTE_TO_PRODUCTION),
        ("POST", "models/versions/v1/transition", None, Action.WRITE),
        # A field named "stage" elsewhere is not a transition to production.
        ("POST", "models/abc/versions", "production", Action.WRITE),
    ],
)
def test_registry_calls_need_the_action_of_what_they_do(
    method: str, path: str, stage: str | None, action: Action
) -> None:
    assert registry_action(method, path, stage) is action


def test_an_integration_config_names_a_backend_of_its_concern() -> None:
    check_backend(Concern.TRAINING_EXECUTION, "kubernetes")
    check_backend(Concern.TRAINING_EXECUTION, "local")
    with pytest.raises(InvalidInput) as raised:
        check_backend(Concern.TRAINING_EXECUTION, "Kubernetes")
    assert raised.value.kind == "unknown-integration-backend"
