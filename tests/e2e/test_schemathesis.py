"""The public API fuzzed through its merged OpenAPI by schemathesis, over real HTTP to the real
platform: no 5xx, and every reply documented and matching its schema.

Bounded and reproducible: a fixed seed, a fixed number of examples per operation and of
stateful scenarios, no example database, no time limits on replies (a loaded machine is slow,
not wrong). Each failure prints the case and a curl command that reproduces it.
"""

import secrets
from collections.abc import AsyncIterator

import hypothesis
import pytest
import schemathesis

from deploy.launcher import Platform
from tests.e2e.conftest import running_platform

pytestmark = pytest.mark.e2e

SEED = 33
EXAMPLES_PER_OPERATION = 12
STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 8
# Bootstrap credential: not a stored token, so a fuzzed `DELETE /tokens/{id}` cannot revoke it.
FUZZ_ADMIN_TOKEN = f"mp_fuzz_{secrets.token_urlsafe(24)}"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "use_after_free",
    "ensure_resource_availability",
    "unsupported_method",
    "allow_header_conformance",
)


def _config(base_url: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "headers": {"Authorization": f"Bearer {FUZZ_ADMIN_TOKEN}"},
            "request-timeout": 120,
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
            },
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        }
    )


@pytest.fixture(scope="module")
async def platform(database_server_url, nats_url, tmp_path_factory) -> AsyncIterator[Platform]:
    async with running_platform(
        database_server_url, nats_url, tmp_path_factory, admin_token=FUZZ_ADMIN_TOKEN
    ) as running:
        yield running


@pytest.fixture(scope="module")
def public_api(platform: Platform) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{platform.gateway_url}/api/v1/openapi.json",
        config=_config(platform.gateway_url),
        timeout=120,
    )


schema = schemathesis.pytest.from_fixture("public_api")
_bounded = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=EXAMPLES_PER_OPERATION,
    suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.mark.timeout(900)
@schema.parametrize()
@_bounded
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


@pytest.mark.timeout(900)
def test_linked_operations_answer_as_documented(public_api: schemathesis.BaseSchema) -> None:
    public_api.as_state_machine().run(
        settings=hypothesis.settings(
            _bounded,
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            # A replay meets the state the first run left (the platform is real), so shrinking
            # a scenario is flaky: the first failure is reported as found.
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
    )
