"""The serving data model's rules without I/O: endpoints, replicas, autoscaling, resources and
GPUs rule by rule, the life cycle, health observations, and rollouts."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.serving.domain import (
    DeploymentSpec,
    DeploymentState,
    DeploymentView,
    EndpointSpec,
    Health,
    HealthPolicy,
    Observation,
    Resources,
    RollBack,
    ScalingTarget,
    ServingFramework,
    TrafficSwitch,
    check_deployment_spec,
    check_endpoint,
    check_transition,
    deployment_spec_violations,
    endpoint_violations,
    framework_resource_id,
    observed_state,
    on_failed,
    on_healthy,
    parse_quantity,
    rollout_needed,
)
from services.serving.errors import (
    DeploymentSpecInvalid,
    EndpointInvalid,
    IllegalDeploymentTransition,
)

ENABLED_GPUS = {"a100-80gb", "h100"}
BOTH = {"ray_serve", "kserve"}
NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
S = DeploymentState


def endpoint(**fields) -> EndpointSpec:
    values = {
        "name": "churn",
        "framework": ServingFramework.RAY_SERVE,
        "namespace": "models",
        "env": "dev",
        "follow_stage": "production",
    }
    return EndpointSpec(**{**values, **fields})


def rules_of_endpoint(enabled=BOTH, **fields) -> list[str]:
    return [v.rule for v in endpoint_violations(endpoint(**fields), enabled)]


def rules_of(spec: DeploymentSpec, framework=ServingFramework.KSERVE) -> list[str]:
    return [
        v.rule
        for v in deployment_spec_violations(
            spec, framework=framework, env="dev", enabled_gpu_types=ENABLED_GPUS
        )
    ]


# Endpoints


def test_a_following_endpoint_and_a_pinned_one_are_valid():
    assert rules_of_endpoint() == []
    assert rules_of_endpoint(follow_stage=None, model_version_id=uuid.uuid4()) == []


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("churn-v2", True),
        ("Churn", False),
        ("1churn", False),
        ("churn-", False),
        ("a" * 40, True),
        ("a" * 41, False),
        ("churn_model", False),
    ],
)
def test_an_endpoint_name_is_a_short_dns_label(name, valid):
    assert (rules_of_endpoint(name=name) == []) is valid


def test_an_endpoint_serves_exactly_one_of_a_version_or_a_stage():
    assert rules_of_endpoint(follow_stage=None) == ["serves-one-of"]
    assert rules_of_endpoint(model_version_id=uuid.uuid4()) == ["serves-one-of"]


def test_an_endpoint_follows_a_known_stage():
    assert rules_of_endpoint(follow_stage="archived") == ["follow-stage-known"]


def test_the_framework_must_be_enabled_for_the_env():
    assert rules_of_endpoint(enabled={"kserve"}) == ["framework-enabled-for-env"]


def test_every_endpoint_violation_is_listed_in_one_problem():
    with pytest.raises(EndpointInvalid) as problem:
        check_endpoint(endpoint(name="Bad Name", namespace="Models", follow_stage=None), set())

    body = problem.value.to_dict()
    assert body["status"] == 422
    assert [v["rule"] for v in body["violations"]] == [
        "endpoint-name-dns-label",
        "namespace-dns-label",
        "serves-one-of",
        "framework-enabled-for-env",
    ]


# Replicas


@pytest.mark.parametrize(
    ("min_replicas", "max_replicas", "replica_count", "rules"),
    [
        (1, 1, None, []),
        (0, 3, 0, []),
        (2, 5, 5, []),
        (-1, 1, None, ["min-replicas-non-negative"]),
        (0, 0, None, ["max-replicas-positive"]),
        (3, 2, None, ["max-replicas-at-least-min"]),
        (1, 3, 4, ["replica-count-within-bounds"]),
        (2, 3, 1, ["replica-count-within-bounds"]),
        (
            -2,
            -3,
            7,
            [
                "min-replicas-non-negative",
                "max-replicas-positive",
                "max-replicas-at-least-min",
                "replica-count-within-bounds",
            ],
        ),
    ],
)
def test_replica_rules(min_replicas, max_replicas, replica_count, rules):
    spec = DeploymentSpec(
        min_replicas=min_replicas, max_replicas=max_replicas, replica_count=replica_count
    )
    assert rules_of(spec) == rules


def test_a_deployment_starts_at_its_replica_count_or_its_minimum():
    assert DeploymentSpec(min_replicas=2, max_replicas=4).initial_replicas == 2
    assert DeploymentSpec(min_replicas=2, max_replicas=4, replica_count=3).initial_replicas == 3


# Autoscaling


@pytest.mark.parametrize(
    ("framework", "metrics", "rules"),
    [
        (ServingFramework.KSERVE, [("cpu", 80)], []),
        (ServingFramework.KSERVE, [("rps", 250)], []),
        (ServingFramework.RAY_SERVE, [("concurrency", 4)], []),
        (ServingFramework.KSERVE, [("latency", 10)], ["autoscaling-metric-known"]),
        (ServingFramework.KSERVE, [("cpu", 0)], ["autoscaling-target-positive"]),
        (ServingFramework.KSERVE, [("memory", 120)], ["autoscaling-utilization-percent"]),
        (ServingFramework.KSERVE, [("gpu", 70)], ["autoscaling-metric-supported"]),
        (ServingFramework.RAY_SERVE, [("cpu", 70)], ["autoscaling-metric-supported"]),
        (ServingFramework.KSERVE, [("cpu", 70), ("cpu", 60)], ["autoscaling-metric-once"]),
        (ServingFramework.KSERVE, [("cpu", 70), ("rps", 60)], ["autoscaling-one-metric"]),
    ],
)
def test_autoscaling_rules(framework, metrics, rules):
    spec = DeploymentSpec(
        min_replicas=1,
        max_replicas=4,
        autoscaling_metrics=tuple(ScalingTarget(m, t) for m, t in metrics),
    )
    assert rules_of(spec, framework) == rules


# Resources and GPUs


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("1.5", Decimal("1.5")),
        ("4Gi", Decimal(4 * 2**30)),
        ("512M", Decimal(512 * 10**6)),
        ("two", None),
        ("4GB", None),
        ("-1", None),
    ],
)
def test_kubernetes_quantities(raw, value):
    assert parse_quantity(raw) == value


@pytest.mark.parametrize(
    ("requests", "limits", "rules"),
    [
        (Resources(cpu="500m", memory="1Gi"), Resources(cpu="1", memory="2Gi"), []),
        (Resources(cpu="half"), Resources(), ["resource-quantity-valid"]),
        (Resources(), Resources(memory="0"), ["resource-quantity-valid"]),
        (Resources(cpu="2"), Resources(cpu="1"), ["request-within-limit"]),
        (Resources(memory="3Gi"), Resources(memory="2Gi"), ["request-within-limit"]),
    ],
)
def test_resource_rules(requests, limits, rules):
    assert rules_of(DeploymentSpec(resource_requests=requests, resource_limits=limits)) == rules


@pytest.mark.parametrize(
    ("requests", "limits", "gpu_type", "rules"),
    [
        (Resources(), Resources(gpus=1), "a100-80gb", []),
        (Resources(gpus=2), Resources(gpus=2), "H100", []),  # ids match case-insensitively
        (Resources(), Resources(gpus=1), None, ["gpu-type-required"]),
        (Resources(), Resources(gpus=1), "t4", ["gpu-type-enabled-for-env"]),
        (Resources(), Resources(), "h100", ["gpu-type-without-gpu"]),
        (Resources(gpus=1), Resources(gpus=2), "h100", ["gpu-request-equals-limit"]),
        (Resources(), Resources(gpus=-1), None, ["gpu-count-non-negative"]),
    ],
)
def test_gpu_rules(requests, limits, gpu_type, rules):
    spec = DeploymentSpec(resource_requests=requests, resource_limits=limits, gpu_type=gpu_type)
    assert rules_of(spec) == rules


def test_every_spec_violation_is_listed_in_one_problem():
    spec = DeploymentSpec(
        min_replicas=3,
        max_replicas=2,
        autoscaling_metrics=(ScalingTarget("gpu", 200),),
        resource_limits=Resources(gpus=1),
        gpu_type="t4",
    )

    with pytest.raises(DeploymentSpecInvalid) as problem:
        check_deployment_spec(
            spec, framework=ServingFramework.RAY_SERVE, env="dev", enabled_gpu_types=ENABLED_GPUS
        )

    body = problem.value.to_dict()
    assert body["status"] == 422
    assert body["type"].endswith("/serving-deployment-invalid")
    assert [v["rule"] for v in body["violations"]] == [
        "max-replicas-at-least-min",
        "autoscaling-utilization-percent",
        "autoscaling-metric-supported",
        "gpu-type-enabled-for-env",
    ]


def test_each_deployment_has_its_own_framework_resource_named_after_its_endpoint():
    first, second = uuid.uuid4(), uuid.uuid4()
    assert framework_resource_id("churn", first).startswith("churn-")
    assert framework_resource_id("churn", first) != framework_resource_id("churn", second)


# The life cycle


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.CREATED, S.DEPLOYING),
        (S.DEPLOYING, S.HEALTHY),
        (S.DEPLOYING, S.DEGRADED),
        (S.DEPLOYING, S.FAILED),
        (S.HEALTHY, S.DEGRADED),
        (S.DEGRADED, S.HEALTHY),
        (S.HEALTHY, S.RETIRED),
        (S.FAILED, S.RETIRED),
    ],
)
def test_legal_transitions(current, target):
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.CREATED, S.HEALTHY),
        (S.FAILED, S.HEALTHY),
        (S.RETIRED, S.DEPLOYING),
        (S.RETIRED, S.RETIRED),
        (S.HEALTHY, S.DEPLOYING),
    ],
)
def test_illegal_transitions_conflict(current, target):
    with pytest.raises(IllegalDeploymentTransition):
        check_transition(current, target)


def observe(
    current,
    health,
    *,
    requested_ago=timedelta(seconds=30),
    unreachable_for=None,
    message="m",
    bad_looks=3,
):
    return observed_state(
        current,
        Observation(health, message),
        requested_at=NOW - requested_ago,
        unreachable_since=None if unreachable_for is None else NOW - unreachable_for,
        now=NOW,
        bad_looks=bad_looks,
        policy=HealthPolicy(
            deploy_timeout=timedelta(minutes=5),
            unreachable_timeout=timedelta(minutes=2),
            degrade_after=3,
        ),
    )


@pytest.mark.parametrize(
    ("current", "health", "target"),
    [
        (S.DEPLOYING, Health.READY, S.HEALTHY),
        (S.DEPLOYING, Health.FAILED, S.FAILED),
        (S.DEPLOYING, Health.NOT_READY, None),  # still coming up: no change, no event
        (S.CREATED, Health.NOT_READY, S.DEPLOYING),
        (S.CREATED, Health.READY, S.DEPLOYING),  # every change is recorded, one at a time
        (S.HEALTHY, Health.READY, None),  # every poll of a healthy deployment: no event
        (S.HEALTHY, Health.NOT_READY, S.DEGRADED),
        (S.DEGRADED, Health.NOT_READY, None),
        (S.DEGRADED, Health.READY, S.HEALTHY),
        (S.HEALTHY, Health.MISSING, S.FAILED),
        (S.FAILED, Health.READY, None),  # a failed rollout stays failed
        (S.RETIRED, Health.FAILED, None),
    ],
)
def test_observations_move_the_state_once_per_change(current, health, target):
    change = observe(current, health)
    assert (change.state if change else None) == target


@pytest.mark.parametrize("health", [Health.NOT_READY, Health.UNREACHABLE])
def test_a_healthy_deployment_is_degraded_only_after_looks_in_a_row_find_it_unwell(health):
    assert observe(S.HEALTHY, health, unreachable_for=timedelta(0), bad_looks=1) is None
    assert observe(S.HEALTHY, health, unreachable_for=timedelta(0), bad_looks=2) is None
    assert observe(S.HEALTHY, health, unreachable_for=timedelta(0), bad_looks=3).state == S.DEGRADED
    # A framework already silent on the first look at a rollout degrades it at once.
    if health == Health.UNREACHABLE:
        assert observe(S.DEPLOYING, health, unreachable_for=timedelta(0), bad_looks=1).state == (
            S.DEGRADED
        )


def test_a_deployment_never_ready_fails_after_the_deploy_timeout():
    change = observe(
        S.DEPLOYING, Health.NOT_READY, requested_ago=timedelta(minutes=6), message="pulling"
    )
    assert change.state == S.FAILED
    assert "pulling" in change.reason


def test_an_unreachable_framework_degrades_until_the_timeout_then_fails():
    assert observe(S.HEALTHY, Health.UNREACHABLE, unreachable_for=timedelta(0)).state == S.DEGRADED
    assert (
        observe(S.DEPLOYING, Health.UNREACHABLE, unreachable_for=timedelta(minutes=1)).state
        == S.DEGRADED
    )
    assert observe(S.DEGRADED, Health.UNREACHABLE, unreachable_for=timedelta(minutes=1)) is None
    assert (
        observe(S.DEGRADED, Health.UNREACHABLE, unreachable_for=timedelta(minutes=3)).state
        == S.FAILED
    )


# Rollouts


def view(state, minutes, version=None) -> DeploymentView:
    return DeploymentView(
        uuid.uuid4(), version or uuid.uuid4(), state, NOW + timedelta(minutes=minutes)
    )


def test_a_version_already_deployed_starts_no_second_rollout():
    serving = view(S.HEALTHY, 0)
    failed = view(S.FAILED, 1)

    assert not rollout_needed([serving, failed], serving.model_version_id)
    assert rollout_needed(
        [serving, failed], failed.model_version_id
    )  # tried again on a new promotion
    assert rollout_needed([serving], uuid.uuid4())


def test_a_first_healthy_deployment_takes_the_traffic():
    first = view(S.HEALTHY, 0)
    assert on_healthy(None, [first], first.id) == TrafficSwitch(first.id, ())


def test_a_healthy_rollout_takes_the_traffic_and_retires_the_old_deployment():
    old, new = view(S.HEALTHY, 0), view(S.HEALTHY, 5)
    assert on_healthy(old.id, [old, new], new.id) == TrafficSwitch(new.id, (old.id,))


def test_the_live_deployment_recovering_changes_nothing():
    live = view(S.HEALTHY, 0)
    assert on_healthy(live.id, [live], live.id) is None


def test_an_older_rollout_finishing_after_a_newer_one_is_retired():
    older, newer = view(S.HEALTHY, 0), view(S.HEALTHY, 5)
    assert on_healthy(newer.id, [older, newer], older.id) == TrafficSwitch(newer.id, (older.id,))


def test_a_rollout_keeps_a_newer_pending_rollout():
    old, new, newest = view(S.HEALTHY, 0), view(S.HEALTHY, 5), view(S.DEPLOYING, 9)
    assert on_healthy(old.id, [old, new, newest], new.id) == TrafficSwitch(new.id, (old.id,))


def test_a_failed_rollout_rolls_back_to_the_live_deployment():
    live, failed = view(S.DEGRADED, 0), view(S.FAILED, 5)
    assert on_failed(live.id, [live, failed], failed.id) == RollBack(failed.id, live.id)


def test_a_failure_with_nothing_to_fall_back_to_is_no_rollback():
    only = view(S.FAILED, 0)
    assert on_failed(None, [only], only.id) is None
    assert on_failed(only.id, [only], only.id) is None
