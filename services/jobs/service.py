"""The jobs service's use cases that need no outside tool: GPU type options and job submission.
Each runs inside one unit of work and records the events its changes cause."""

import logging
from typing import Any
from uuid import uuid4

from services.jobs import store
from services.jobs.domain import (
    DatasetVersionState,
    JobStatus,
    canonical_gpu_type_id,
    check_gpu_type_option,
    gpu_type_option_violations,
    validate_job,
)
from services.jobs.errors import DuplicateGpuType, GpuTypeNotFound
from services.jobs.events import job_fields
from services.jobs.models import GpuTypeOption, TrainingJob
from shared.db import UnitOfWork, apply_changes
from shared.environments import Env
from shared.events.datasets import DatasetVersionEvent
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import (
    GpuTypeOptionsChanged,
    JobRejected,
    JobRequest,
    JobSubmitted,
    JobValidated,
    RuleViolation,
)
from shared.events.pipelines import PipelineStageRequested

log = logging.getLogger(__name__)


def _option_data(option: GpuTypeOption) -> dict[str, Any]:
    return {
        "id": option.id,
        "env": option.env,
        "label": option.label,
        "enabled": option.enabled,
        "priority": option.priority,
        "node_label": option.node_label,
    }


async def create_gpu_type(
    uow: UnitOfWork,
    *,
    id: str,
    label: str,
    env: Env,
    enabled: bool,
    priority: int,
    node_label: str | None,
) -> GpuTypeOption:
    gpu_type_id = canonical_gpu_type_id(id)
    check_gpu_type_option(gpu_type_id, label)
    option = await store.insert_gpu_type(
        uow.session,
        {
            "env": env.value,
            "id": gpu_type_id,
            "label": label.strip(),
            "enabled": enabled,
            "priority": priority,
            "node_label": node_label,
        },
    )
    if option is None:
        raise DuplicateGpuType(f"env '{env}' already has a GPU type '{gpu_type_id}'")
    uow.record(
        GpuTypeOptionsChanged(
            env=option.env, gpu_type_id=option.id, change="created", option=_option_data(option)
        ),
        f"{option.env}/{option.id}",
    )
    return option


async def update_gpu_type(
    uow: UnitOfWork, env: Env, gpu_type_id: str, changes: dict[str, Any]
) -> GpuTypeOption:
    gpu_type_id = canonical_gpu_type_id(gpu_type_id)
    option = await store.lock_gpu_type(uow.session, env.value, gpu_type_id)
    if option is None:
        raise GpuTypeNotFound(env, gpu_type_id)
    if "label" in changes:
        if changes["label"] is None or gpu_type_option_violations(gpu_type_id, changes["label"]):
            check_gpu_type_option(gpu_type_id, changes["label"] or "")
        changes["label"] = changes["label"].strip()
    changes = {k: v for k, v in changes.items() if k == "node_label" or v is not None}
    if changes:
        await apply_changes(uow.session, option, changes)
        uow.record(
            GpuTypeOptionsChanged(
                env=option.env, gpu_type_id=option.id, change="updated", option=_option_data(option)
            ),
            f"{option.env}/{option.id}",
        )
    return option


async def delete_gpu_type(uow: UnitOfWork, env: Env, gpu_type_id: str) -> None:
    gpu_type_id = canonical_gpu_type_id(gpu_type_id)
    if await store.lock_gpu_type(uow.session, env.value, gpu_type_id) is None:
        raise GpuTypeNotFound(env, gpu_type_id)
    await store.delete_gpu_type(uow.session, env.value, gpu_type_id)
    uow.record(
        GpuTypeOptionsChanged(
            env=env.value, gpu_type_id=gpu_type_id, change="deleted", option=None
        ),
        f"{env.value}/{gpu_type_id}",
    )


async def submit_job(
    uow: UnitOfWork,
    request: JobRequest,
    *,
    actor: str,
    requested_by: PipelineStageRequested | None = None,
) -> TrainingJob:
    """Validate a job against the data model and keep it: `validated` to be started, or
    `rejected` with its violations. The same rules apply whether it came over HTTP (the caller
    answers 422 for a rejection after this commits) or was `requested_by` a pipeline stage."""
    resources = request.resources.model_dump()
    enabled = await store.enabled_gpu_types(uow.session, request.env.value)
    datasets = await store.dataset_version_states(uow.session, set(request.dataset_version_ids))
    check = validate_job(
        env=request.env,
        use_gpu=request.use_gpu,
        gpu_type=resources["gpu_type"],
        gpus=resources["gpus"],
        enabled_gpu_types=enabled,
        dataset_version_ids=request.dataset_version_ids,
        dataset_versions=datasets,
    )
    if check.gpu_type is not None:
        resources["gpu_type"] = check.gpu_type
    status = JobStatus.VALIDATED if check.accepted else JobStatus.REJECTED
    origin = (
        {}
        if requested_by is None
        else {
            "pipeline_run_id": requested_by.pipeline_run_id,
            "pipeline_stage": requested_by.stage,
            "pipeline_attempt": requested_by.attempt,
        }
    )
    job = await store.insert_job(
        uow.session,
        {
            **request.model_dump(mode="json"),
            **origin,
            "id": uuid4(),
            "project_id": request.project_id,
            "resources": resources,
            "status": status.value,
            "created_by": actor,
            "violations": [v.to_dict() for v in check.violations],
        },
    )
    identity = job_fields(job)
    uow.record(
        JobSubmitted(
            **identity,
            env=job.env,
            job_type=job.job_type,
            use_gpu=job.use_gpu,
            gpu_type=request.resources.gpu_type,
        ),
        job.id,
    )
    if check.accepted:
        uow.record(
            JobValidated(
                **identity,
                env=job.env,
                job_type=job.job_type,
                use_gpu=job.use_gpu,
                gpu_type=check.gpu_type,
            ),
            job.id,
        )
    else:
        uow.record(
            JobRejected(
                **identity,
                env=job.env,
                violations=[
                    RuleViolation(rule=v.rule, message=v.message, field=v.field)
                    for v in check.violations
                ],
            ),
            job.id,
        )
    return job


async def submit_stage_job(
    uow: UnitOfWork, requested: PipelineStageRequested, *, actor: str
) -> TrainingJob:
    """The job of one attempt of a pipeline stage; asking again for that attempt (a pipeline
    that re-published its request) gives the job it already has."""
    job = await store.job_of_stage_attempt(
        uow.session, requested.pipeline_run_id, requested.stage, requested.attempt
    )
    if job is not None:
        log.info(
            "pipeline run %s stage %s attempt %d already has job %s",
            requested.pipeline_run_id,
            requested.stage,
            requested.attempt,
            job.id,
        )
        return job
    return await submit_job(uow, requested.job, actor=actor, requested_by=requested)


async def apply_integration_config(uow: UnitOfWork, change: IntegrationConfigChanged) -> None:
    """Keep the newest IntegrationConfig of each env; the next job started there uses it."""
    await store.put_integration_config(uow.session, change)


async def keep_dataset_version(
    uow: UnitOfWork, event: DatasetVersionEvent, seen: DatasetVersionState
) -> None:
    """Remember what the datasets service said of a version, so jobs naming it are checked."""
    await store.put_dataset_version(
        uow.session,
        {
            "dataset_version_id": event.dataset_version_id,
            "dataset_id": event.dataset_id,
            "project_id": event.project_id,
            "state": seen.value,
        },
    )
