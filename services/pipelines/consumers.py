"""Events the pipelines service reacts to: the answers to its stages' commands. Thin: read
which stage attempt the event answers, turn it into the engine's answer, plan.

The registry answers on `registry.stage_command.*`, so the pipelines service reads none of the
registry's other events; jobs and serving events name the attempt they answer, if any."""

from datetime import UTC, datetime
from typing import NamedTuple
from uuid import UUID

from services.pipelines import service
from services.pipelines.engine import (
    StageFailed,
    answer_of_deployment,
    answer_of_job_event,
    answer_of_registry_command,
)
from shared.consumers import EventConsumer
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import JobCancelled, JobFailed, JobRejected, JobStarted, JobSucceeded
from shared.events.registry import RegistryStageCommandDone, RegistryStageCommandRefused
from shared.events.serving import DeploymentFailed, DeploymentHealthy, ServingStageCommandRefused
from shared.events.stage_attempts import StageAttemptAnswer, StageCommandRefused
from shared.integrations import Concern


def _at(event: CloudEvent) -> datetime:
    return event.time.astimezone(UTC)


class _Attempt(NamedTuple):
    run_id: UUID
    stage: str
    attempt: int


def _attempt(event: CloudEvent) -> _Attempt | None:
    """The stage attempt the event answers; None for one no pipeline asked for."""
    tag = StageAttemptAnswer.model_validate(event.data)
    if tag.pipeline_run_id is None or tag.pipeline_stage is None or tag.pipeline_attempt is None:
        return None
    return _Attempt(tag.pipeline_run_id, tag.pipeline_stage, tag.pipeline_attempt)


def _asked_by_a_pipeline(event: CloudEvent) -> bool:
    """Most registry, jobs and serving events answer no pipeline: they need no transaction."""
    return event.data.get("pipeline_run_id") is not None


def _job_answer(contract):
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        data = event.parse_data(contract)
        if data.pipeline_run_id is None:
            return  # a job submitted over HTTP
        answer = answer_of_job_event(data, _at(event))
        if answer is not None:
            await service.answer(uow, data.pipeline_run_id, answer)

    handle.__name__ = f"answer_{contract.__name__}"
    return handle


async def registry_command_done(uow: UnitOfWork, event: CloudEvent) -> None:
    """The registry registered or moved the version a stage asked for."""
    done = event.parse_data(RegistryStageCommandDone)
    await service.answer(uow, done.pipeline_run_id, answer_of_registry_command(done, _at(event)))


async def keep_integration_config(uow: UnitOfWork, event: CloudEvent) -> None:
    change = event.parse_data(IntegrationConfigChanged)
    if change.concern == Concern.PIPELINE_ORCHESTRATION:
        await service.apply_integration_config(uow, change)


async def command_refused(uow: UnitOfWork, event: CloudEvent) -> None:
    """The registry or serving would not do what a stage asked: that attempt failed."""
    refusal = event.parse_data(StageCommandRefused)
    answer = StageFailed(
        refusal.pipeline_stage,
        refusal.pipeline_attempt,
        _at(event),
        f"{refusal.reason} ({refusal.problem})",
    )
    await service.answer(uow, refusal.pipeline_run_id, answer)


def _deployment_answer(healthy: bool):
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        tag = _attempt(event)
        if tag is not None:
            answer = answer_of_deployment(event.data, tag.stage, tag.attempt, healthy, _at(event))
            await service.answer(uow, tag.run_id, answer)

    return handle


CONSUMERS = (
    *(
        EventConsumer(
            durable=f"pipelines-{contract.subject.replace('.', '-').replace('_', '-')}",
            subject=contract.subject,
            handle=_job_answer(contract),
            wants=_asked_by_a_pipeline,
        )
        for contract in (JobStarted, JobSucceeded, JobFailed, JobRejected, JobCancelled)
    ),
    EventConsumer(
        durable="pipelines-registry-stage-command-done",
        subject=RegistryStageCommandDone.subject,
        handle=registry_command_done,
    ),
    EventConsumer(
        durable="pipelines-gateway-integration-config-changed",
        subject=IntegrationConfigChanged.subject,
        handle=keep_integration_config,
    ),
    EventConsumer(
        durable="pipelines-serving-deployment-healthy",
        subject=DeploymentHealthy.subject,
        handle=_deployment_answer(healthy=True),
        wants=_asked_by_a_pipeline,
    ),
    EventConsumer(
        durable="pipelines-serving-deployment-failed",
        subject=DeploymentFailed.subject,
        handle=_deployment_answer(healthy=False),
        wants=_asked_by_a_pipeline,
    ),
    *(
        EventConsumer(
            durable=f"pipelines-{contract.subject.replace('.', '-').replace('_', '-')}",
            subject=contract.subject,
            handle=command_refused,
        )
        for contract in (RegistryStageCommandRefused, ServingStageCommandRefused)
    ),
)
