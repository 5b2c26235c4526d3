"""The gateway's own rules: pure, no I/O. Roles are tested with shared/auth.py (tests/test_auth.py)."""

import pytest

from services.gateway.domain import check_backend
from shared.errors import InvalidInput
from shared.integrations import Concern


def test_an_integration_config_names_a_backend_of_its_concern() -> None:
    check_backend(Concern.TRAINING_EXECUTION, "kubernetes")
    check_backend(Concern.TRAINING_EXECUTION, "local")
    with pytest.raises(InvalidInput) as raised:
        check_backend(Concern.TRAINING_EXECUTION, "Kubernetes")
    assert raised.value.kind == "unknown-integration-backend"
