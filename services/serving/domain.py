"""The serving service's rules, pure Python: endpoints, deployment specs, the deployment life
cycle, how a framework's health moves it, and how a rollout switches or rolls back."""

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from uuid import UUID

from services.serving.errors import (
    DeploymentSpecInvalid,
    EndpointInvalid,
    IllegalDeploymentTransition,
)

# An endpoint's name names its framework resources (`<name>-<8 hex>`), which must be DNS-1035
# labels: KServe derives longer host names from an InferenceService's, so stay well short of 63.
ENDPOINT_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_ENDPOINT_NAME_LENGTH = 40
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAMESPACE_LENGTH = 63
QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*)$")
QUANTITY_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


class ServingFramework(StrEnum):
    RAY_SERVE = "ray_serve"
    KSERVE = "kserve"


class FollowStage(StrEnum):
    """The stages an endpoint may follow: each promotion into it rolls the new version out."""

    STAGING = "staging"
    PRODUCTION = "production"


class AutoscalingMetric(StrEnum):
    CPU = "cpu"  # average utilization, percent of the CPU request
    MEMORY = "memory"  # average utilization, percent of the memory request
    GPU = "gpu"  # average GPU utilization, percent
    CONCURRENCY = "concurrency"  # requests in flight per replica
    RPS = "rps"  # requests per second per replica


UTILIZATION_METRICS = frozenset(
    {AutoscalingMetric.CPU, AutoscalingMetric.MEMORY, AutoscalingMetric.GPU}
)

# What each framework can scale on: Ray Serve on requests in flight per replica
# (`target_ongoing_requests`); KServe's `scaleMetric` takes cpu, memory, concurrency or rps.
FRAMEWORK_METRICS: dict[ServingFramework, frozenset[AutoscalingMetric]] = {
    ServingFramework.RAY_SERVE: frozenset({AutoscalingMetric.CONCURRENCY}),
    ServingFramework.KSERVE: frozenset(
        {
            AutoscalingMetric.CPU,
            AutoscalingMetric.MEMORY,
            AutoscalingMetric.CONCURRENCY,
            AutoscalingMetric.RPS,
        }
    ),
}


class DeploymentState(StrEnum):
    CREATED = "created"
    DEPLOYING = "deploying"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"
    RETIRED = "retired"

    @property
    def active(self) -> bool:
        """Still on (or on its way onto) its framework: it may serve, or become able to."""
        return self in ACTIVE


ACTIVE = frozenset(
    {
        DeploymentState.CREATED,
        DeploymentState.DEPLOYING,
        DeploymentState.HEALTHY,
        DeploymentState.DEGRADED,
    }
)

# created -> deploying -> healthy | degraded | failed, and any state but retired -> retired.
# A failed deployment stays failed: its rollout is over, a new one is a new deployment.
TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    DeploymentState.CREATED: frozenset(
        {DeploymentState.DEPLOYING, DeploymentState.FAILED, DeploymentState.RETIRED}
    ),
    DeploymentState.DEPLOYING: frozenset(
        {
            DeploymentState.HEALTHY,
            DeploymentState.DEGRADED,
            DeploymentState.FAILED,
            DeploymentState.RETIRED,
        }
    ),
    DeploymentState.HEALTHY: frozenset(
        {DeploymentState.DEGRADED, DeploymentState.FAILED, DeploymentState.RETIRED}
    ),
    DeploymentState.DEGRADED: frozenset(
        {DeploymentState.HEALTHY, DeploymentState.FAILED, DeploymentState.RETIRED}
    ),
    DeploymentState.FAILED: frozenset({DeploymentState.RETIRED}),
    DeploymentState.RETIRED: frozenset(),
}


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str


def _problem_violations(violations: list[Violation]) -> list[dict[str, str]]:
    return [{"rule": v.rule, "message": v.message} for v in violations]


# Endpoints


@dataclass(frozen=True)
class EndpointSpec:
    """What an endpoint serves and where: a pinned version, or the version in a followed stage."""

    name: str
    framework: ServingFramework
    namespace: str
    env: str
    model_version_id: UUID | None = None
    follow_stage: str | None = None


def endpoint_violations(spec: EndpointSpec, enabled_frameworks: Collection[str]) -> list[Violation]:
    """Each rule the endpoint breaks; `enabled_frameworks` are those the env's configuration allows."""
    violations = []
    if not ENDPOINT_NAME.match(spec.name) or len(spec.name) > MAX_ENDPOINT_NAME_LENGTH:
        violations.append(
            Violation(
                "endpoint-name-dns-label",
                f"name '{spec.name}' must be a lowercase DNS label: a-z, 0-9 and '-', starting with a "
                f"letter, at most {MAX_ENDPOINT_NAME_LENGTH} characters",
            )
        )
    if not NAMESPACE.match(spec.namespace) or len(spec.namespace) > MAX_NAMESPACE_LENGTH:
        violations.append(
            Violation(
                "namespace-dns-label",
                f"namespace '{spec.namespace}' must be a lowercase DNS label of at most "
                f"{MAX_NAMESPACE_LENGTH} characters",
            )
        )
    if (spec.model_version_id is None) == (spec.follow_stage is None):
        violations.append(
            Violation(
                "serves-one-of",
                "an endpoint serves either a pinned model_version_id or follows a stage",
            )
        )
    elif spec.follow_stage is not None and spec.follow_stage not in tuple(FollowStage):
        violations.append(
            Violation(
                "follow-stage-known",
                f"follow_stage '{spec.follow_stage}' must be one of {', '.join(FollowStage)}",
            )
        )
    if spec.framework not in enabled_frameworks:
        violations.append(
            Violation(
                "framework-enabled-for-env",
                f"serving framework '{spec.framework}' is not enabled in env '{spec.env}'",
            )
        )
    return violations


def check_endpoint(spec: EndpointSpec, enabled_frameworks: Collection[str]) -> None:
    if violations := endpoint_violations(spec, enabled_frameworks):
        raise EndpointInvalid(
            "; ".join(v.message for v in violations), violations=_problem_violations(violations)
        )


# Deployment specs


@dataclass(frozen=True)
class ScalingTarget:
    metric: str
    target: float


@dataclass(frozen=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0


@dataclass(frozen=True)
class DeploymentSpec:
    """How a deployment runs: replicas, what it scales on, and what each replica gets."""

    min_replicas: int = 1
    max_replicas: int = 1
    replica_count: int | None = None  # None: start at min_replicas
    autoscaling_metrics: tuple[ScalingTarget, ...] = ()
    resource_requests: Resources = field(default_factory=Resources)
    resource_limits: Resources = field(default_factory=Resources)
    gpu_type: str | None = None

    @property
    def initial_replicas(self) -> int:
        return self.min_replicas if self.replica_count is None else self.replica_count

    @property
    def gpus(self) -> int:
        """GPUs per replica: a GPU is an extended resource, its request equals its limit."""
        return max(self.resource_limits.gpus, self.resource_requests.gpus)


def parse_quantity(raw: str) -> Decimal | None:
    """A Kubernetes resource quantity (`500m`, `2`, `4Gi`) as a number; None when malformed."""
    match = QUANTITY.match(raw.strip())
    if match is None or match["suffix"] not in QUANTITY_SUFFIXES:
        return None
    try:
        return Decimal(match["number"]) * QUANTITY_SUFFIXES[match["suffix"]]
    except InvalidOperation:
        return None


def canonical_gpu_type_id(raw: str) -> str:
    """GPU type ids match case-insensitively, as the jobs service keeps them."""
    return raw.strip().lower()


def _replica_violations(spec: DeploymentSpec) -> list[Violation]:
    violations = []
    if spec.min_replicas < 0:
        violations.append(
            Violation(
                "min-replicas-non-negative",
                f"min_replicas is {spec.min_replicas}; it must be 0 or more",
            )
        )
    if spec.max_replicas < 1:
        violations.append(
            Violation(
                "max-replicas-positive",
                f"max_replicas is {spec.max_replicas}; it must be at least 1",
            )
        )
    if spec.max_replicas < spec.min_replicas:
        violations.append(
            Violation(
                "max-replicas-at-least-min",
                f"max_replicas ({spec.max_replicas}) must be at least min_replicas ({spec.min_replicas})",
            )
        )
    if (
        spec.replica_count is not None
        and not spec.min_replicas <= spec.replica_count <= spec.max_replicas
    ):
        violations.append(
            Violation(
                "replica-count-within-bounds",
                f"replica_count ({spec.replica_count}) must lie between min_replicas "
                f"({spec.min_replicas}) and max_replicas ({spec.max_replicas})",
            )
        )
    return violations


def _autoscaling_violations(spec: DeploymentSpec, framework: ServingFramework) -> list[Violation]:
    violations = []
    seen: set[str] = set()
    supported = FRAMEWORK_METRICS[framework]
    for scaling in spec.autoscaling_metrics:
        if scaling.metric not in tuple(AutoscalingMetric):
            violations.append(
                Violation(
                    "autoscaling-metric-known",
                    f"autoscaling metric '{scaling.metric}' must be one of {', '.join(AutoscalingMetric)}",
                )
            )
            continue
        metric = AutoscalingMetric(scaling.metric)
        if metric in seen:
            violations.append(
                Violation(
                    "autoscaling-metric-once",
                    f"autoscaling metric '{metric}' is listed more than once",
                )
            )
        seen.add(metric)
        if not scaling.target > 0:
            violations.append(
                Violation(
                    "autoscaling-target-positive",
                    f"the target of '{metric}' must be greater than 0",
                )
            )
        elif metric in UTILIZATION_METRICS and scaling.target > 100:
            violations.append(
                Violation(
                    "autoscaling-utilization-percent",
                    f"the target of '{metric}' is a utilization in percent: at most 100",
                )
            )
        if metric not in supported:
            violations.append(
                Violation(
                    "autoscaling-metric-supported",
                    f"{framework} cannot scale on '{metric}'; it scales on {', '.join(sorted(supported))}",
                )
            )
    if len(seen) > 1:
        violations.append(
            Violation(
                "autoscaling-one-metric", f"{framework} scales on one metric; {len(seen)} are given"
            )
        )
    return violations


def _resource_violations(
    spec: DeploymentSpec, env: str, enabled_gpu_types: Collection[str]
) -> list[Violation]:
    violations = []
    parsed: dict[tuple[str, str], Decimal] = {}
    for side, resources in (
        ("resource_requests", spec.resource_requests),
        ("resource_limits", spec.resource_limits),
    ):
        for name in ("cpu", "memory"):
            raw = getattr(resources, name)
            if raw is None:
                continue
            quantity = parse_quantity(raw)
            if quantity is None or quantity <= 0:
                violations.append(
                    Violation(
                        "resource-quantity-valid",
                        f"{side}.{name} '{raw}' must be a positive Kubernetes quantity such as "
                        f"{'500m or 2' if name == 'cpu' else '512Mi or 4Gi'}",
                    )
                )
            else:
                parsed[side, name] = quantity
        if resources.gpus < 0:
            violations.append(
                Violation(
                    "gpu-count-non-negative",
                    f"{side}.gpus is {resources.gpus}; it must be 0 or more",
                )
            )
    for name in ("cpu", "memory"):
        request, limit = (
            parsed.get(("resource_requests", name)),
            parsed.get(("resource_limits", name)),
        )
        if request is not None and limit is not None and request > limit:
            violations.append(
                Violation(
                    "request-within-limit",
                    f"resource_requests.{name} ({spec.resource_requests.__dict__[name]}) exceeds "
                    f"resource_limits.{name} ({spec.resource_limits.__dict__[name]})",
                )
            )
    requested, limited = spec.resource_requests.gpus, spec.resource_limits.gpus
    if requested > 0 and limited > 0 and requested != limited:
        violations.append(
            Violation(
                "gpu-request-equals-limit",
                f"resource_requests.gpus ({requested}) must equal resource_limits.gpus ({limited})",
            )
        )
    gpu_type = canonical_gpu_type_id(spec.gpu_type) if spec.gpu_type else None
    if spec.gpus > 0:
        if gpu_type is None:
            violations.append(
                Violation(
                    "gpu-type-required", "the deployment asks for GPUs, so gpu_type is required"
                )
            )
        elif gpu_type not in enabled_gpu_types:
            violations.append(
                Violation(
                    "gpu-type-enabled-for-env",
                    f"gpu type '{spec.gpu_type}' is not an enabled GPU type of env '{env}'",
                )
            )
    elif gpu_type is not None:
        violations.append(
            Violation(
                "gpu-type-without-gpu",
                "gpu_type is set, so resource_limits.gpus must be at least 1",
            )
        )
    return violations


def deployment_spec_violations(
    spec: DeploymentSpec,
    *,
    framework: ServingFramework,
    env: str,
    enabled_gpu_types: Collection[str],
) -> list[Violation]:
    """Each rule the spec breaks; `enabled_gpu_types` are the canonical ids enabled in `env`."""
    return [
        *_replica_violations(spec),
        *_autoscaling_violations(spec, framework),
        *_resource_violations(spec, env, enabled_gpu_types),
    ]


def check_deployment_spec(
    spec: DeploymentSpec,
    *,
    framework: ServingFramework,
    env: str,
    enabled_gpu_types: Collection[str],
) -> None:
    """Raise one 422 listing every rule the spec breaks."""
    violations = deployment_spec_violations(
        spec, framework=framework, env=env, enabled_gpu_types=enabled_gpu_types
    )
    if violations:
        raise DeploymentSpecInvalid(
            "; ".join(v.message for v in violations), violations=_problem_violations(violations)
        )


def framework_resource_id(endpoint_name: str, deployment_id: UUID) -> str:
    """One framework resource per deployment: the endpoint's name and the deployment's own tail."""
    return f"{endpoint_name}-{deployment_id.hex[:8]}"


# The life cycle


def check_transition(current: DeploymentState, target: DeploymentState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalDeploymentTransition(f"a {current} deployment cannot become {target}")


class Health(StrEnum):
    """What a framework says of one deployment, before the life cycle interprets it."""

    READY = "ready"  # answers predictions
    NOT_READY = "not_ready"  # being brought up, or down for a while
    FAILED = "failed"  # the framework gave up on it (the model cannot load, ...)
    MISSING = "missing"  # the framework no longer has the resource
    UNREACHABLE = "unreachable"  # the framework did not answer


@dataclass(frozen=True)
class Observation:
    health: Health
    message: str = ""


@dataclass(frozen=True)
class HealthPolicy:
    """How long a deployment may stay unproven before it is failed.

    `deploy_timeout`: from the request until the framework reports it ready (a model that never
    loads). `unreachable_timeout`: the framework not answering at all; until then the
    deployment is only degraded, since an outage of the control path is not the model's fault.
    `degrade_after`: the looks in a row that must find a healthy deployment not ready or its
    framework silent before it is degraded, so one slow answer of a busy framework is no event.
    """

    deploy_timeout: timedelta = timedelta(minutes=15)
    unreachable_timeout: timedelta = timedelta(minutes=10)
    degrade_after: int = 3


@dataclass(frozen=True)
class StateChange:
    state: DeploymentState
    reason: str


def observed_state(
    current: DeploymentState,
    observation: Observation,
    *,
    requested_at: datetime,
    unreachable_since: datetime | None,
    now: datetime,
    bad_looks: int = 1,
    policy: HealthPolicy = HealthPolicy(),
) -> StateChange | None:
    """The state an observation moves a deployment to; None when it stays (no event, no row).

    `unreachable_since` is when the framework first stopped answering in the current outage;
    `bad_looks` counts the looks in a row, this one included, that found the deployment not
    ready or its framework silent.
    """
    if current in (DeploymentState.RETIRED, DeploymentState.FAILED):
        return None
    reason = observation.message
    target: DeploymentState
    match observation.health:
        case Health.READY:
            target = DeploymentState.HEALTHY
        case Health.FAILED:
            target = DeploymentState.FAILED
        case Health.MISSING:
            target, reason = (
                DeploymentState.FAILED,
                reason or "the framework no longer has the deployment",
            )
        case Health.NOT_READY if current in (DeploymentState.CREATED, DeploymentState.DEPLOYING):
            if now - requested_at >= policy.deploy_timeout:
                target = DeploymentState.FAILED
                reason = f"not ready {policy.deploy_timeout} after it was requested" + (
                    f": {reason}" if reason else ""
                )
            else:
                target = DeploymentState.DEPLOYING
        case Health.NOT_READY:
            target = DeploymentState.DEGRADED
        case Health.UNREACHABLE:
            since = unreachable_since or now
            if now - since >= policy.unreachable_timeout:
                target = DeploymentState.FAILED
                reason = f"the framework has not answered for {policy.unreachable_timeout}" + (
                    f": {reason}" if reason else ""
                )
            elif current == DeploymentState.CREATED:
                return None  # not yet handed over: the request is retried, nothing degraded
            else:
                target = DeploymentState.DEGRADED
                reason = "the framework does not answer" + (f": {reason}" if reason else "")
    if (
        current == DeploymentState.HEALTHY
        and target == DeploymentState.DEGRADED
        and bad_looks < policy.degrade_after
    ):
        return None
    if current == DeploymentState.CREATED and target in (
        DeploymentState.HEALTHY,
        DeploymentState.DEGRADED,
    ):
        target = DeploymentState.DEPLOYING  # handed over: recorded first, the next poll moves it on
    if target == current:
        return None
    if target not in TRANSITIONS[current]:
        return None
    return StateChange(target, reason)


# Rollouts


@dataclass(frozen=True)
class DeploymentView:
    id: UUID
    model_version_id: UUID
    state: DeploymentState
    created_at: datetime


def rollout_needed(deployments: Iterable[DeploymentView], model_version_id: UUID) -> bool:
    """A version gets a new deployment unless an active one already serves it (a promotion seen
    twice, or a version promoted back while still deployed, starts no second rollout)."""
    return not any(d.model_version_id == model_version_id and d.state.active for d in deployments)


@dataclass(frozen=True)
class TrafficSwitch:
    """The endpoint's traffic moves to `live`; `retire` are the deployments it replaces."""

    live: UUID
    retire: tuple[UUID, ...]


@dataclass(frozen=True)
class RollBack:
    """The rollout of `failed` is over; the endpoint keeps serving `serving`."""

    failed: UUID
    serving: UUID


def on_healthy(
    live_id: UUID | None, deployments: Iterable[DeploymentView], healthy_id: UUID
) -> TrafficSwitch | None:
    """A deployment became healthy: traffic moves to it unless a newer active one already has
    it, and every other active deployment older than the one with the traffic is retired (an
    older rollout finishing late is retired at once). None when nothing changes."""
    deployments = list(deployments)
    by_id = {d.id: d for d in deployments}
    healthy = by_id[healthy_id]
    live = by_id.get(live_id) if live_id is not None else None
    if live is None or not live.state.active or live.created_at <= healthy.created_at:
        live = healthy
    retire = tuple(
        d.id
        for d in deployments
        if d.id != live.id and d.state.active and d.created_at <= live.created_at
    )
    if live.id == live_id and not retire:
        return None
    return TrafficSwitch(live.id, retire)


def on_failed(
    live_id: UUID | None, deployments: Iterable[DeploymentView], failed_id: UUID
) -> RollBack | None:
    """A deployment failed: when it was a rollout and an older live deployment still serves,
    the endpoint stays on that one. None when the failed one was the live one, or none serves."""
    by_id = {d.id: d for d in deployments}
    if live_id is None or live_id == failed_id:
        return None
    live = by_id.get(live_id)
    if live is None or not live.state.active or live.created_at > by_id[failed_id].created_at:
        return None
    return RollBack(failed_id, live_id)
