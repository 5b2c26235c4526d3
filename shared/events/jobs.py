"""Events published by the jobs service on stream JOBS (subjects `jobs.>`), and the job request
that `POST /api/v1/jobs` and PipelineStageRequested both carry."""

import math
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from shared.environments import Env
from shared.events.envelope import EventData
from shared.validation import JsonObject, Text, refuse_nul


class JobType(StrEnum):
    TRAINING = "training"
    EVALUATION = "evaluation"


class RegisterModel(BaseModel):
    model_id: UUID


class _Request(BaseModel):
    # A request is checked strictly wherever it arrives: an unknown field is a mistake.
    model_config = ConfigDict(extra="forbid")


# Kubernetes keeps quantities as int64 milli-units; anything larger no cluster would take.
MAX_QUANTITY = Decimal(2**63 - 1) / 1000
BINARY_SUFFIXES = (
    ("Ei", 1024**6),
    ("Pi", 1024**5),
    ("Ti", 1024**4),
    ("Gi", 1024**3),
    ("Mi", 1024**2),
    ("Ki", 1024),
)


def parse_positive_quantity(value: object) -> Decimal:
    """A Kubernetes quantity given as a number or a string (`1`, `0.5`, `"500m"`, `"2Gi"`)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # A ValueError, since pydantic reports only that (not TypeError) as invalid input.
        raise ValueError(  # noqa: TRY004
            "must be a Kubernetes quantity: a number, or a string such as '500m' or '2Gi'"
        )
    # Imported on first use: the kubernetes package takes a second to import.
    from kubernetes.utils import parse_quantity

    try:
        quantity = parse_quantity(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity (such as 2, 0.5, '500m' or '2Gi')"
        ) from None
    if not quantity.is_finite() or quantity <= 0:
        raise ValueError(f"{value!r} is not a positive quantity")
    if quantity > MAX_QUANTITY:
        raise ValueError(f"{value!r} is larger than any cluster takes")
    return quantity


def canonical_cpu(value: object) -> str | None:
    """CPU in whole cores (`"2"`) or else millicores (`"1500m"`), rounded up to 1m as
    Kubernetes does: the form a cluster reports it in."""
    if value is None:
        return None
    millicores = math.ceil(parse_positive_quantity(value) * 1000)
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def canonical_memory(value: object) -> str | None:
    """Memory in bytes, rounded up, with the largest binary suffix that divides it exactly
    (`"2Gi"`, `"1536Mi"`; `"1G"` stays `"1000000000"`)."""
    if value is None:
        return None
    size = math.ceil(parse_positive_quantity(value))
    for suffix, unit in BINARY_SUFFIXES:
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def quantity_bytes(memory: str) -> int:
    """The bytes a canonical memory quantity names."""
    return math.ceil(parse_positive_quantity(memory))


def quantity_cores(cpu: str) -> Decimal:
    """The cores a canonical CPU quantity names."""
    return parse_positive_quantity(cpu)


_QUANTITY_SCHEMA = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
CpuQuantity = Annotated[
    str | None, BeforeValidator(canonical_cpu), WithJsonSchema(_QUANTITY_SCHEMA)
]
MemoryQuantity = Annotated[
    str | None, BeforeValidator(canonical_memory), WithJsonSchema(_QUANTITY_SCHEMA)
]


class JobResources(_Request):
    gpus: int | None = Field(default=None, ge=0, le=1024)
    gpu_type: Text | None = None
    cpu: CpuQuantity = Field(
        default=None,
        description="Cores, a Kubernetes quantity: 1, 0.5 or '500m'. Kept and answered in "
        "whole cores ('2') or millicores ('500m').",
    )
    memory: MemoryQuantity = Field(
        default=None,
        description="Bytes, a Kubernetes quantity: 1073741824, '2Gi' or '512M'. Kept and "
        "answered in bytes with the largest binary suffix that divides them ('2Gi', '1536Mi').",
    )


class RegisterModelRequest(_Request):
    model_id: UUID


COMMAND_DESCRIPTION = (
    "The program and its arguments; `parameters` follow as `--key value`. The local executor "
    "runs it as a process on the jobs service's machine with the service's environment: "
    "`python` is the first one on the service's PATH (under `make up`, the platform's own "
    "virtualenv) unless `python_env` names another. The Kubernetes executor runs it in "
    "`image`. Either way the job gets MLFLOW_TRACKING_URI and MLFLOW_RUN_ID of its run."
)


def _absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    return value


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
AbsolutePath = Annotated[Text, AfterValidator(_absolute_path)]


class JobRequest(_Request):
    """A training or evaluation job as asked for, before the data model's rules are applied."""

    name: Annotated[Name, AfterValidator(refuse_nul)]
    project_id: UUID
    env: Env
    job_type: JobType = JobType.TRAINING
    command: Annotated[list[Text], Field(min_length=1, description=COMMAND_DESCRIPTION)]
    working_dir: Text | None = Field(
        default=None,
        description="Where the command runs; by default a directory of the job's own "
        "(local executor) or the image's working directory (Kubernetes).",
    )
    python_env: AbsolutePath | None = Field(
        default=None,
        description="Local executor only: the absolute path of a virtualenv or conda prefix "
        "whose bin/ goes first on the job's PATH, so `python` is that environment's. The "
        "Kubernetes executor ignores it (the image decides) and says so in `warnings`.",
    )
    image: Text | None = Field(
        default=None, description="Kubernetes executor: the container image the job runs in."
    )
    parameters: JsonObject = Field(default_factory=dict)
    use_gpu: bool = False
    resources: JobResources = Field(default_factory=JobResources)
    dataset_version_ids: list[UUID] = Field(default_factory=list)
    register_model: RegisterModelRequest | None = None


class JobEvent(EventData):
    """What every event about one job carries. The pipeline fields name the attempt of the
    pipeline stage that asked for the job; they are None for a job submitted over HTTP."""

    job_id: UUID
    name: str
    project_id: UUID
    pipeline_run_id: UUID | None = None
    pipeline_stage: str | None = None
    pipeline_attempt: int | None = None
    # The dataset versions the job reads (verified ones, for a job that was not rejected).
    dataset_version_ids: list[UUID] = Field(default_factory=list)


class JobSubmitted(JobEvent):
    """A request was accepted for validation; JobValidated or JobRejected follows."""

    subject = "jobs.job.submitted"
    env: str
    job_type: str
    use_gpu: bool
    gpu_type: str | None  # as requested


class JobSucceeded(JobEvent):
    subject = "jobs.job.succeeded"
    run_id: str | None
    metrics: dict[str, float]
    artifact_uri: str | None
    register_model: RegisterModel | None = None


class RuleViolation(BaseModel):
    rule: str
    message: str
    field: str | None = None  # the request field it is about, when one is


class GpuTypeOptionsChanged(EventData):
    """An option was created, updated or deleted; `option` is its state after (None: deleted)."""

    subject = "jobs.gpu_type_options.changed"
    env: str
    gpu_type_id: str
    change: str  # "created" | "updated" | "deleted"
    option: dict[str, Any] | None


class JobRejected(JobEvent):
    subject = "jobs.job.rejected"
    env: str
    violations: list[RuleViolation]


class JobValidated(JobEvent):
    subject = "jobs.job.validated"
    env: str
    job_type: str
    use_gpu: bool
    gpu_type: str | None


class JobStarted(JobEvent):
    subject = "jobs.job.started"
    executor: str
    run_id: str | None


class JobFailed(JobEvent):
    subject = "jobs.job.failed"
    run_id: str | None
    exit_code: int | None
    message: str | None


class JobCancelled(JobEvent):
    subject = "jobs.job.cancelled"
    run_id: str | None


class ExperimentRunUpdated(EventData):
    """A job's run was created (status running) or ended (completed, failed or killed, with the
    latest metrics and the artifact URIs read back from the tracking system)."""

    subject = "jobs.experiment_run.updated"
    experiment_run_id: UUID
    job_id: UUID
    project_id: UUID
    tracking_system: str
    tracking_run_id: str
    experiment_name: str
    run_name: str
    status: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifact_uris: list[str]
    artifacts: list[str] = Field(default_factory=list)  # the files logged, under the root
    start_time: datetime
    end_time: datetime | None
