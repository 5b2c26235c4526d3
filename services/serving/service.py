"""The serving service's use cases. Each runs inside one unit of work and records the events its
changes cause; the calls to serving frameworks happen outside any transaction (reconciler.py)."""

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.serving import store
from services.serving.domain import (
    TRANSITIONS,
    DeploymentSpec,
    DeploymentState,
    DeploymentView,
    EndpointSpec,
    Resources,
    RollBack,
    ScalingTarget,
    ServingFramework,
    StateChange,
    Violation,
    canonical_gpu_type_id,
    check_transition,
    deployment_spec_violations,
    endpoint_violations,
    framework_resource_id,
    on_failed,
    on_healthy,
    rollout_needed,
)
from services.serving.errors import (
    DuplicateEndpoint,
    EndpointInvalid,
    EndpointRetired,
    OutsideTheRunsProject,
    VersionNotDeployable,
    endpoint_not_found,
)
from services.serving.models import ModelVersionCopy, ServingDeployment, ServingEndpoint
from shared.auth import Caller, Role
from shared.db import UnitOfWork
from shared.errors import Problem
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import GpuTypeOptionsChanged
from shared.events.pipelines import ModelVersionDeploymentRequested, StageCommand
from shared.events.registry import (
    ModelVersionCreated,
    ModelVersionDeleted,
    ModelVersionTransitioned,
)
from shared.events.serving import (
    DeploymentDegraded,
    DeploymentDeploying,
    DeploymentFailed,
    DeploymentHealthy,
    DeploymentRequested,
    DeploymentRetired,
    DeploymentRolledBack,
    ServingStageCommandRefused,
)
from shared.events.stage_attempts import StageAttemptAnswer
from shared.integrations import Concern

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


# Specs as stored (JSON) and as the domain takes them


def spec_from_json(raw: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec(
        min_replicas=raw.get("min_replicas", 1),
        max_replicas=raw.get("max_replicas", 1),
        replica_count=raw.get("replica_count"),
        autoscaling_metrics=tuple(
            ScalingTarget(m["metric"], m["target"]) for m in raw.get("autoscaling_metrics") or ()
        ),
        resource_requests=Resources(**(raw.get("resource_requests") or {})),
        resource_limits=Resources(**(raw.get("resource_limits") or {})),
        gpu_type=raw.get("gpu_type"),
    )


def spec_of(deployment: ServingDeployment) -> DeploymentSpec:
    return spec_from_json(
        {
            "min_replicas": deployment.min_replicas,
            "max_replicas": deployment.max_replicas,
            "replica_count": deployment.replica_count,
            "autoscaling_metrics": deployment.autoscaling_metrics,
            "resource_requests": deployment.resource_requests,
            "resource_limits": deployment.resource_limits,
            "gpu_type": deployment.gpu_type,
        }
    )


# Frameworks enabled per env


async def enabled_frameworks(uow: UnitOfWork, env: str, defaults: Collection[str]) -> set[str]:
    """The env's IntegrationConfig names its framework, and its settings' `enabled_frameworks`
    may add others; an env without one has the service's defaults."""
    config = await store.get_integration_config(uow.session, env, Concern.SERVING)
    if config is None:
        return set(defaults)
    return {config.backend, *config.settings.get("enabled_frameworks", [])}


async def default_namespace(uow: UnitOfWork, env: str, fallback: str) -> str:
    config = await store.get_integration_config(uow.session, env, Concern.SERVING)
    return (config.settings.get("namespace") if config else None) or fallback


# Endpoints


async def create_endpoint(
    uow: UnitOfWork,
    *,
    name: str,
    project_id: UUID,
    model_id: UUID,
    model_version_id: UUID | None,
    follow_stage: str | None,
    framework: ServingFramework,
    namespace: str,
    env: str,
    deployment: dict[str, Any],
    actor: str,
    frameworks: Collection[str],
) -> ServingEndpoint:
    """Check every rule of the endpoint and its deployment spec (one 422 listing them all), keep
    it, and start serving its version: the pinned one, or the one in the stage it follows."""
    await store.lock_model(uow.conn, model_id)
    spec = spec_from_json(deployment)
    enabled_gpus = await store.enabled_gpu_types(uow.session, env)
    violations = [
        *endpoint_violations(
            EndpointSpec(
                name=name,
                framework=framework,
                namespace=namespace,
                env=env,
                model_version_id=model_version_id,
                follow_stage=follow_stage,
            ),
            await enabled_frameworks(uow, env, frameworks),
        ),
        *deployment_spec_violations(
            spec, framework=framework, env=env, enabled_gpu_types=enabled_gpus
        ),
    ]
    version: ModelVersionCopy | None = None
    if model_version_id is not None:
        version = await store.get_model_version(uow.session, model_version_id)
        if version is None:
            violations.append(
                Violation(
                    "version-known",
                    f"model version {model_version_id} is not known "
                    "to the serving service (not registered, or not yet)",
                )
            )
        elif version.model_id != model_id:
            violations.append(
                Violation(
                    "version-of-model",
                    f"model version {model_version_id} is not a version of model {model_id}",
                )
            )
    elif follow_stage is not None:
        version = await store.version_in_stage(uow.session, model_id, follow_stage)
    if version is not None and not version.artifact_uri:
        violations.append(
            Violation(
                "version-has-artifact",
                f"version {version.version} has no artifact URI to load a model from",
            )
        )
    if violations:
        raise EndpointInvalid(
            "; ".join(v.message for v in violations),
            violations=[{"rule": v.rule, "message": v.message} for v in violations],
        )
    stored = {
        **deployment,
        "gpu_type": canonical_gpu_type_id(spec.gpu_type) if spec.gpu_type else None,
    }
    endpoint = await store.insert_endpoint(
        uow.session,
        {
            "id": uuid4(),
            "project_id": project_id,
            "name": name,
            "model_id": model_id,
            "model_version_id": model_version_id,
            "follow_stage": follow_stage,
            "serving_framework": framework.value,
            "namespace": namespace,
            "env": env,
            "deployment_spec": stored,
            "created_by": actor,
        },
    )
    if endpoint is None:
        raise DuplicateEndpoint(f"project {project_id} already has an endpoint named '{name}'")
    if version is not None:
        await start_rollout(uow, endpoint, version)
    return endpoint


async def retire_endpoint(uow: UnitOfWork, endpoint_id: UUID, caller: Caller) -> ServingEndpoint:
    """Undeploy: the endpoint answers no more, and the reconciler takes each deployment down."""
    endpoint = await store.lock_endpoint(uow.session, endpoint_id)
    if endpoint is None:
        raise endpoint_not_found(endpoint_id)
    caller.require(endpoint.project_id, Role.EDITOR)
    now = _now()
    store.touch(endpoint, now, retired=True, live_deployment_id=None)
    for deployment in await store.deployments_of(uow.session, endpoint.id):
        if deployment.state != DeploymentState.RETIRED:
            store.touch(deployment, now, retire_requested=True)
    return endpoint


# Rollouts


def deployment_event_fields(
    endpoint: ServingEndpoint, deployment: ServingDeployment
) -> dict[str, Any]:
    return {
        "deployment_id": deployment.id,
        "endpoint_id": endpoint.id,
        "endpoint_name": endpoint.name,
        "project_id": endpoint.project_id,
        "model_id": deployment.model_id,
        "model_version_id": deployment.model_version_id,
        "version": deployment.version,
        "env": endpoint.env,
        "serving_framework": deployment.serving_framework,
        "framework_resource_id": deployment.framework_resource_id,
        "framework_namespace": deployment.framework_namespace,
        "state": deployment.state,
        "pipeline_run_id": deployment.pipeline_run_id,
        "pipeline_stage": deployment.pipeline_stage,
        "pipeline_attempt": deployment.pipeline_attempt,
    }


def _views(deployments: Sequence[ServingDeployment]) -> list[DeploymentView]:
    return [
        DeploymentView(d.id, d.model_version_id, DeploymentState(d.state), d.created_at)
        for d in deployments
    ]


async def start_rollout(
    uow: UnitOfWork,
    endpoint: ServingEndpoint,
    version: ModelVersionCopy,
    answers: StageAttemptAnswer | None = None,
) -> ServingDeployment | None:
    """A new deployment of `version`, unless an active one already serves it; `answers` is the
    pipeline stage attempt that asked for it."""
    deployments = await store.deployments_of(uow.session, endpoint.id)
    if not rollout_needed(_views(deployments), version.version_id):
        log.info(
            "endpoint %s already serves version %s; no rollout", endpoint.id, version.version_id
        )
        return None
    spec = spec_from_json(endpoint.deployment_spec)
    deployment_id = uuid4()
    deployment = await store.insert_deployment(
        uow.session,
        {
            "id": deployment_id,
            "endpoint_id": endpoint.id,
            "model_id": version.model_id,
            "model_version_id": version.version_id,
            "version": version.version,
            "model_uri": version.artifact_uri,
            "serving_framework": endpoint.serving_framework,
            "framework_resource_id": framework_resource_id(endpoint.name, deployment_id),
            "framework_namespace": endpoint.namespace,
            "replica_count": spec.initial_replicas,
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "autoscaling_metrics": [
                {"metric": s.metric, "target": s.target} for s in spec.autoscaling_metrics
            ],
            "resource_requests": endpoint.deployment_spec.get("resource_requests") or {},
            "resource_limits": endpoint.deployment_spec.get("resource_limits") or {},
            "gpu_type": spec.gpu_type,
            "state": DeploymentState.CREATED.value,
            **(answers.stage_attempt() if answers else {}),
        },
    )
    uow.record(
        DeploymentRequested(
            **deployment_event_fields(endpoint, deployment),
            replica_count=deployment.replica_count,
            min_replicas=deployment.min_replicas,
            max_replicas=deployment.max_replicas,
            autoscaling_metrics=deployment.autoscaling_metrics,
            resource_requests=deployment.resource_requests,
            resource_limits=deployment.resource_limits,
            gpu_type=deployment.gpu_type,
        ),
        deployment.id,
    )
    return deployment


class VersionNotKnownYet(Exception):
    """The command came before the version's ModelVersionCreated (two consumers, no order
    between them): it is delivered again, after a back-off."""


async def deploy_for_stage(uow: UnitOfWork, command: ModelVersionDeploymentRequested) -> None:
    """A pipeline's deploy stage rolls a version out to an endpoint. A version an active
    deployment already serves is not deployed again: that deployment answers the stage (now, if
    it is healthy already)."""
    endpoint = await store.lock_endpoint(uow.session, command.endpoint_id)
    if endpoint is None:
        raise endpoint_not_found(command.endpoint_id)
    if command.project_id is not None and endpoint.project_id != command.project_id:
        raise OutsideTheRunsProject(
            f"endpoint {endpoint.id} is in project {endpoint.project_id}, "
            f"not in the run's project {command.project_id}"
        )
    if endpoint.retired:
        raise EndpointRetired(f"endpoint {endpoint.id} was undeployed")
    version = await store.get_model_version(uow.session, command.version_id)
    if version is None:
        raise VersionNotKnownYet(
            f"the registry's ModelVersionCreated of {command.version_id} has not been taken in yet"
        )
    if version.model_id != endpoint.model_id or not version.artifact_uri:
        raise VersionNotDeployable(
            f"version {command.version_id} is not a version of model {endpoint.model_id} with an "
            "artifact to load, as far as the registry's events told serving"
        )
    answers = StageAttemptAnswer(
        pipeline_run_id=command.pipeline_run_id,
        pipeline_stage=command.stage,
        pipeline_attempt=command.attempt,
    )
    if await start_rollout(uow, endpoint, version, answers) is not None:
        return
    serving = next(
        d
        for d in await store.deployments_of(uow.session, endpoint.id)
        if d.model_version_id == version.version_id and DeploymentState(d.state).active
    )
    store.touch(serving, _now(), **answers.stage_attempt())
    if serving.state == DeploymentState.HEALTHY:
        uow.record(
            DeploymentHealthy(
                **deployment_event_fields(endpoint, serving),
                live=endpoint.live_deployment_id == serving.id,
            ),
            serving.id,
        )


def refuse_stage_command(uow: UnitOfWork, command: StageCommand, refusal: Problem) -> None:
    uow.record(
        ServingStageCommandRefused(
            pipeline_run_id=command.pipeline_run_id,
            pipeline_stage=command.stage,
            pipeline_attempt=command.attempt,
            command=command.subject,
            problem=refusal.kind,
            reason=refusal.detail,
        ),
        command.pipeline_run_id,
    )


async def _roll_out_to_followers(uow: UnitOfWork, version_id: UUID) -> int:
    version = await store.get_model_version(uow.session, version_id)
    if (
        version is None
        or not version.artifact_uri
        or version.stage not in ("staging", "production")
    ):
        return 0
    started = 0
    for endpoint in await store.endpoints_following(uow.session, version.model_id, version.stage):
        started += await start_rollout(uow, endpoint, version) is not None
    return started


async def version_created(uow: UnitOfWork, created: ModelVersionCreated) -> None:
    """Keep the version's artifact URI. A version already in a followed stage (created there, or
    its transition seen first: they come through different consumers) rolls out now."""
    await store.lock_model(uow.conn, created.model_id)
    followed = await store.keep_created_version(
        uow.conn,
        version_id=created.version_id,
        model_id=created.model_id,
        model_name=created.model_name,
        version=created.version,
        stage=created.stage,
        artifact_uri=created.artifact_uri,
    )
    if followed:
        await _roll_out_to_followers(uow, created.version_id)


async def version_transitioned(uow: UnitOfWork, moved: ModelVersionTransitioned) -> int:
    """Keep the version's stage; every endpoint following that stage rolls the version out.
    Returns how many rollouts started (none for a transition seen before)."""
    await store.lock_model(uow.conn, moved.model_id)
    followed = await store.keep_version_stage(
        uow.conn,
        version_id=moved.version_id,
        model_id=moved.model_id,
        model_name=moved.model_name,
        version=moved.version,
        stage=moved.to_stage,
        artifact_uri=None,
    )
    return await _roll_out_to_followers(uow, moved.version_id) if followed else 0


async def version_deleted(uow: UnitOfWork, deleted: ModelVersionDeleted) -> None:
    await store.delete_model_version(uow.session, deleted.version_id)


async def gpu_type_changed(uow: UnitOfWork, changed: GpuTypeOptionsChanged) -> None:
    if changed.option is None:
        await store.delete_gpu_type(uow.session, changed.env, changed.gpu_type_id)
        return
    await store.put_gpu_type(
        uow.session,
        changed.env,
        changed.gpu_type_id,
        bool(changed.option.get("enabled", True)),
        changed.option.get("node_label"),
    )


async def integration_config_changed(uow: UnitOfWork, change: IntegrationConfigChanged) -> None:
    applied = await store.put_integration_config(
        uow.session,
        {
            "env": change.env,
            "concern": change.concern,
            "backend": change.backend,
            "settings": change.settings,
            "changed_by": change.changed_by,
            "changed_at": change.changed_at,
        },
    )
    if not applied:
        log.info(
            "serving config of %s changed at %s is older than the one kept; ignored",
            change.env,
            change.changed_at,
        )


# The life cycle, as the reconciler sees it


STATE_EVENTS = {
    DeploymentState.DEPLOYING: DeploymentDeploying,
    DeploymentState.DEGRADED: DeploymentDegraded,
    DeploymentState.FAILED: DeploymentFailed,
}


async def record_state(
    uow: UnitOfWork,
    deployment_id: UUID,
    change: StateChange | None,
    *,
    framework_status: dict[str, Any] | None = None,
    unreachable: bool = False,
) -> ServingDeployment | None:
    """Apply what the reconciler learnt of a deployment: its raw status, and a change of state
    with its one event and the rollout's consequences (traffic switch, retirements, rollback).
    Holding the endpoint's lock, so two changes of one endpoint never interleave."""
    deployment = await store.get_deployment(uow.session, deployment_id)
    if deployment is None:
        return None
    endpoint = await store.lock_endpoint(uow.session, deployment.endpoint_id)
    assert endpoint is not None, "a deployment's endpoint is never deleted (foreign key)"
    await uow.session.refresh(deployment)
    now = _now()
    if framework_status is not None and framework_status != deployment.framework_status:
        store.touch(deployment, now, framework_status=framework_status)
    if unreachable and deployment.unreachable_since is None:
        store.touch(deployment, now, unreachable_since=now)
    elif not unreachable and deployment.unreachable_since is not None:
        store.touch(deployment, now, unreachable_since=None)
    current = DeploymentState(deployment.state)
    if change is None or change.state == current or change.state not in TRANSITIONS[current]:
        return deployment
    check_transition(current, change.state)
    store.touch(deployment, now, state=change.state.value, state_reason=change.reason or None)
    fields = deployment_event_fields(endpoint, deployment)
    deployments = await store.deployments_of(uow.session, endpoint.id)
    if change.state == DeploymentState.DEPLOYING:
        store.touch(deployment, now, deployed_at=deployment.deployed_at or now)
        uow.record(DeploymentDeploying(**fields), deployment.id)
    elif change.state == DeploymentState.HEALTHY:
        store.touch(deployment, now, healthy_at=deployment.healthy_at or now)
        switch = (
            None
            if endpoint.retired
            else on_healthy(endpoint.live_deployment_id, _views(deployments), deployment.id)
        )
        if switch is not None:
            store.touch(endpoint, now, live_deployment_id=switch.live)
            for other in deployments:
                if other.id in switch.retire:
                    store.touch(other, now, retire_requested=True)
        uow.record(
            DeploymentHealthy(**fields, live=endpoint.live_deployment_id == deployment.id),
            deployment.id,
        )
    elif change.state == DeploymentState.DEGRADED:
        uow.record(DeploymentDegraded(**fields, reason=change.reason), deployment.id)
    elif change.state == DeploymentState.FAILED:
        uow.record(DeploymentFailed(**fields, reason=change.reason), deployment.id)
        rollback = on_failed(endpoint.live_deployment_id, _views(deployments), deployment.id)
        if rollback is not None:
            _record_rollback(uow, endpoint, deployments, rollback, change.reason)
        if endpoint.live_deployment_id != deployment.id:
            store.touch(
                deployment, now, retire_requested=True
            )  # nothing of it serves: take it down
    elif change.state == DeploymentState.RETIRED:
        store.touch(deployment, now, retired_at=now, retire_requested=False)
        if endpoint.live_deployment_id == deployment.id:
            store.touch(endpoint, now, live_deployment_id=None)
        uow.record(DeploymentRetired(**fields, reason=change.reason), deployment.id)
    return deployment


def _record_rollback(
    uow: UnitOfWork,
    endpoint: ServingEndpoint,
    deployments: Sequence[ServingDeployment],
    rollback: RollBack,
    reason: str,
) -> None:
    by_id = {d.id: d for d in deployments}
    failed, serving = by_id[rollback.failed], by_id[rollback.serving]
    uow.record(
        DeploymentRolledBack(
            endpoint_id=endpoint.id,
            endpoint_name=endpoint.name,
            project_id=endpoint.project_id,
            model_id=endpoint.model_id,
            failed_deployment_id=failed.id,
            failed_model_version_id=failed.model_version_id,
            serving_deployment_id=serving.id,
            serving_model_version_id=serving.model_version_id,
            reason=reason,
        ),
        endpoint.id,
    )
