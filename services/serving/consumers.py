"""Events the serving service reacts to. Thin: parse the event, call the use case."""

from services.serving import service
from shared.consumers import EventConsumer
from shared.db import UnitOfWork
from shared.errors import Problem
from shared.events import CloudEvent
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import GpuTypeOptionsChanged
from shared.events.pipelines import ModelVersionDeploymentRequested
from shared.events.registry import (
    ModelVersionCreated,
    ModelVersionDeleted,
    ModelVersionTransitioned,
)
from shared.integrations import Concern


async def roll_out_transitioned_version(uow: UnitOfWork, event: CloudEvent) -> None:
    """A version moved into a stage: endpoints following it roll it out (once: the inbox drops a
    redelivery, and a version already deployed starts no second rollout)."""
    await service.version_transitioned(uow, event.parse_data(ModelVersionTransitioned))


async def keep_created_version(uow: UnitOfWork, event: CloudEvent) -> None:
    await service.version_created(uow, event.parse_data(ModelVersionCreated))


async def forget_deleted_version(uow: UnitOfWork, event: CloudEvent) -> None:
    await service.version_deleted(uow, event.parse_data(ModelVersionDeleted))


async def keep_gpu_type(uow: UnitOfWork, event: CloudEvent) -> None:
    await service.gpu_type_changed(uow, event.parse_data(GpuTypeOptionsChanged))


async def keep_integration_config(uow: UnitOfWork, event: CloudEvent) -> None:
    change = event.parse_data(IntegrationConfigChanged)
    if change.concern == Concern.SERVING:
        await service.integration_config_changed(uow, change)


async def deploy_for_pipeline_stage(uow: UnitOfWork, event: CloudEvent) -> None:
    """A deploy stage's rollout; its DeploymentHealthy / DeploymentFailed (or a refusal) names
    the stage attempt."""
    command = event.parse_data(ModelVersionDeploymentRequested)
    try:
        await service.deploy_for_stage(uow, command)
    except Problem as refusal:
        service.refuse_stage_command(uow, command, refusal)


CONSUMERS = (
    EventConsumer(
        durable="serving-registry-model-version-transitioned",
        subject=ModelVersionTransitioned.subject,
        handle=roll_out_transitioned_version,
    ),
    EventConsumer(
        durable="serving-registry-model-version-created",
        subject=ModelVersionCreated.subject,
        handle=keep_created_version,
    ),
    EventConsumer(
        durable="serving-registry-model-version-deleted",
        subject=ModelVersionDeleted.subject,
        handle=forget_deleted_version,
    ),
    EventConsumer(
        durable="serving-jobs-gpu-type-options-changed",
        subject=GpuTypeOptionsChanged.subject,
        handle=keep_gpu_type,
    ),
    EventConsumer(
        durable="serving-gateway-integration-config-changed",
        subject=IntegrationConfigChanged.subject,
        handle=keep_integration_config,
    ),
    EventConsumer(
        durable="serving-pipelines-stage-deployment-requested",
        subject=ModelVersionDeploymentRequested.subject,
        handle=deploy_for_pipeline_stage,
    ),
)
