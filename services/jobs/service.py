"""The jobs service's use cases that need no outside tool: GPU type options and job submission.
Each runs inside one unit of work and records the events its changes cause."""

from typing import Any
from uuid import UUID, uuid4

from services.jobs import store
from services.jobs.domain import (
    Env,
    JobStatus,
    canonical_gpu_type_id,
    check_gpu_type_option,
    gpu_type_option_violations,
    validate_job,
)
from services.jobs.models import GpuTypeOption, TrainingJob
from shared.db import UnitOfWork, apply_changes
from shared.errors import Conflict, NotFound
from shared.events.jobs import GpuTypeOptionsChanged, JobRejected, JobValidated, RuleViolation


class DuplicateGpuType(Conflict):
    kind = "duplicate-gpu-type"


def gpu_type_not_found(env: str, gpu_type_id: str) -> NotFound:
    return NotFound(f"env '{env}' has no GPU type '{gpu_type_id}'", kind="gpu-type-not-found")


def job_not_found(job_id: UUID) -> NotFound:
    return NotFound(f"no job with id {job_id}", kind="job-not-found")


def _option_data(option: GpuTypeOption) -> dict[str, Any]:
    return {"id": option.id, "env": option.env, "label": option.label, "enabled": option.enabled,
            "priority": option.priority, "node_label": option.node_label}


async def create_gpu_type(
    uow: UnitOfWork, *, id: str, label: str, env: Env, enabled: bool, priority: int,
    node_label: str | None,
) -> GpuTypeOption:
    gpu_type_id = canonical_gpu_type_id(id)
    check_gpu_type_option(gpu_type_id, label)
    option = await store.insert_gpu_type(
        uow.session,
        {"env": env.value, "id": gpu_type_id, "label": label.strip(), "enabled": enabled,
         "priority": priority, "node_label": node_label},
    )
    if option is None:
        raise DuplicateGpuType(f"env '{env}' already has a GPU type '{gpu_type_id}'")
    uow.record(
        GpuTypeOptionsChanged(env=option.env, gpu_type_id=option.id, change="created",
                              option=_option_data(option)),
        f"{option.env}/{option.id}",
    )
    return option


async def update_gpu_type(
    uow: UnitOfWork, env: Env, gpu_type_id: str, changes: dict[str, Any]
) -> GpuTypeOption:
    gpu_type_id = canonical_gpu_type_id(gpu_type_id)
    option = await store.lock_gpu_type(uow.session, env.value, gpu_type_id)
    if option is None:
        raise gpu_type_not_found(env, gpu_type_id)
    if "label" in changes:
        if changes["label"] is None or gpu_type_option_violations(gpu_type_id, changes["label"]):
            check_gpu_type_option(gpu_type_id, changes["label"] or "")
        changes["label"] = changes["label"].strip()
    changes = {k: v for k, v in changes.items() if k == "node_label" or v is not None}
    if changes:
        await apply_changes(uow.session, option, changes)
        uow.record(
            GpuTypeOptionsChanged(env=option.env, gpu_type_id=option.id, change="updated",
                                  option=_option_data(option)),
            f"{option.env}/{option.id}",
        )
    return option


async def delete_gpu_type(uow: UnitOfWork, env: Env, gpu_type_id: str) -> None:
    gpu_type_id = canonical_gpu_type_id(gpu_type_id)
    if await store.lock_gpu_type(uow.session, env.value, gpu_type_id) is None:
        raise gpu_type_not_found(env, gpu_type_id)
    await store.delete_gpu_type(uow.session, env.value, gpu_type_id)
    uow.record(
        GpuTypeOptionsChanged(
            env=env.value, gpu_type_id=gpu_type_id, change="deleted", option=None
        ),
        f"{env.value}/{gpu_type_id}",
    )


async def submit_job(uow: UnitOfWork, *, actor: str, **fields: Any) -> TrainingJob:
    """Validate a job against the data model and keep it: `validated` to be started, or
    `rejected` with its violations (the caller answers 422 after this commits)."""
    env = Env(fields["env"])
    resources = dict(fields.get("resources") or {})
    enabled = await store.enabled_gpu_types(uow.session, env.value)
    check = validate_job(
        env=env, use_gpu=fields["use_gpu"], gpu_type=resources.get("gpu_type"),
        gpus=resources.get("gpus"), enabled_gpu_types=enabled,
    )
    if check.gpu_type is not None:
        resources["gpu_type"] = check.gpu_type
    status = JobStatus.VALIDATED if check.accepted else JobStatus.REJECTED
    job = await store.insert_job(
        uow.session,
        {**fields, "id": uuid4(), "env": env.value, "resources": resources,
         "dataset_version_ids": [str(d) for d in fields.get("dataset_version_ids", [])],
         "register_model": _json(fields.get("register_model")),
         "status": status.value, "created_by": actor,
         "violations": [{"rule": v.rule, "message": v.message} for v in check.violations]},
    )
    if check.accepted:
        uow.record(
            JobValidated(job_id=job.id, name=job.name, project_id=job.project_id, env=job.env,
                         job_type=job.job_type, use_gpu=job.use_gpu, gpu_type=check.gpu_type),
            job.id,
        )
    else:
        uow.record(
            JobRejected(job_id=job.id, name=job.name, project_id=job.project_id, env=job.env,
                        violations=[RuleViolation(rule=v.rule, message=v.message)
                                    for v in check.violations]),
            job.id,
        )
    return job


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: str(v) if isinstance(v, UUID) else v for k, v in value.items()}
    return value
