"""The public API fuzzed through its merged OpenAPI by schemathesis, over real HTTP to the real
platform: no 5xx, and every reply documented and matching its schema.

Bounded and reproducible: a fixed seed, a fixed number of examples per operation and of
stateful scenarios, no example database, no time limits on replies (a loaded machine is slow,
not wrong). Each failure prints the case and a curl command that reproduces it.
"""

import hypothesis
import pytest
import schemathesis

from deploy.launcher import Platform
from tests.e2e.clients import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

SEED = 33
EXAMPLES_PER_OPERATION = 12
STATEFUL_SCENARIOS = 100
STATEFUL_STEPS = 8
# Given with each call, not in the config: schemathesis then takes it for a real credential,
# and `ignored_auth` checks that the call is refused without it or with a wrong one.
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
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
)
# Not checked: `unsupported_method` and `allow_header_conformance`. `/registry/models/summary`
# also matches `/registry/models/{model_id}`, so PATCH there is a 422 (not a UUID), not a 405,
# and its Allow names PATCH: true of the routes, not of the document.


def _config(base_url: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "request-timeout": 120,
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
                # Unknown query parameters and headers are ignored, as FastAPI does: not input.
                "allow-extra-parameters": False,
            },
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
            },
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        }
    )


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


def test_every_link_leads_to_an_operation_and_fills_its_path(
    public_api: schemathesis.BaseSchema,
) -> None:
    document = public_api.raw_schema
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, reply in operation.get("responses", {}).items():
                for name, link in reply.get("links", {}).items():
                    target_path, target_method = _resolve(link["operationRef"])
                    target = document["paths"][target_path][target_method]
                    wanted = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                    given = set(link.get("parameters", {}))
                    assert given <= wanted, (method, path, status, name)
                    assert given or "requestBody" in link, (method, path, status, name)
                    found.append(name)
    # The creating operations of every service carry links (gateway, registry, jobs, ...).
    assert {
        "CreateVersion",
        "TransitionVersion",
        "GetJob",
        "GetEndpoint",
        "StartRun",
        "VerifyVersion",
        "RevokeToken",
        "RegisterModel",
    } <= set(found)


def _resolve(operation_ref: str) -> tuple[str, str]:
    pointer = operation_ref.removeprefix("#/paths/")
    path, _, method = pointer.rpartition("/")
    return path.replace("~1", "/").replace("~0", "~"), method


@pytest.mark.timeout(900)
@schema.parametrize()
@_bounded
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH)


@pytest.mark.timeout(900)
def test_linked_operations_answer_as_documented(public_api: schemathesis.BaseSchema) -> None:
    """Scenarios that follow the OpenAPI links (a new model's id to its versions, a version's
    to its transition, ...). Failures are collected, not raised: hypothesis would replay a
    failing scenario against a platform whose state has moved on, and report only that."""
    failures: dict[str, str] = {}  # the first of each kind per operation
    scenarios = 0
    answered: set[tuple[str, int]] = set()  # (operation, status) of every step

    class Scenarios(public_api.as_state_machine()):
        def get_call_kwargs(self, case) -> dict:
            return {"headers": AUTH}

        def after_call(self, response, case) -> None:
            super().after_call(response, case)
            answered.add((case.operation.label, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            try:
                super().validate_response(response, case, additional_checks, **kwargs)
            except schemathesis.errors.FailureGroup as failure:
                kinds = sorted(type(one).__name__ for one in failure.exceptions)
                failures.setdefault(f"{case.operation.label} {kinds}", str(failure))

        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1

    # Hypothesis may replay a prefix of a scenario to vary it; on a real platform the replay
    # meets other state and hypothesis stops as "flaky". Go on, as schemathesis' CLI does,
    # until the scenarios are run (a few restarts at most).
    for _ in range(5):
        try:
            Scenarios.run(
                settings=hypothesis.settings(
                    _bounded,
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                )
            )
        except hypothesis.errors.Flaky:
            pass
        if scenarios >= STATEFUL_SCENARIOS:
            break
    assert not failures, "\n\n".join(failures.values())
    assert scenarios >= STATEFUL_SCENARIOS / 2, f"only {scenarios} scenarios ran"
    # The links led somewhere: an operation on a resource by id succeeded with an id a reply gave.
    reached = sorted(label for label, status in answered if "{" in label and status < 300)
    assert reached, sorted(answered)
