"""The jobs service's rules, pure Python: GPU type ids, job validation and the job life cycle."""

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from uuid import UUID

from services.jobs.errors import InvalidGpuTypeOption, JobAlreadyFinished
from shared.environments import Env
from shared.integrations import TrainingBackend

GPU_TYPE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
MAX_GPU_TYPE_ID_LENGTH = 63


class JobStatus(StrEnum):
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    # A request that broke a rule: kept as a job so its JobRejected event has an aggregate.
    REJECTED = "rejected"

    @property
    def finished(self) -> bool:
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.REJECTED})


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"


# A job's terminal status, the status of its experiment run, and MLflow's name for it.
TERMINAL_RUN_STATUS: dict[JobStatus, tuple[RunStatus, Literal["FINISHED", "FAILED", "KILLED"]]] = {
    JobStatus.SUCCEEDED: (RunStatus.COMPLETED, "FINISHED"),
    JobStatus.FAILED: (RunStatus.FAILED, "FAILED"),
    JobStatus.KILLED: (RunStatus.KILLED, "KILLED"),
}


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    field: str | None = None  # the request field it is about, when one is

    def to_dict(self) -> dict[str, str]:
        found = {"rule": self.rule, "message": self.message}
        return found if self.field is None else {**found, "field": self.field}


class DatasetVersionState(StrEnum):
    """A dataset version as the datasets service's events said; only a verified one is used."""

    CREATED = "created"
    VERIFIED = "verified"  # or active
    FAILED = "failed"


# Events of one version come through several consumers, so in any order: the higher rank wins
# (a version fails for good; a late `created` does not undo its verification).
DATASET_VERSION_RANK = {
    DatasetVersionState.CREATED: 0,
    DatasetVersionState.VERIFIED: 1,
    DatasetVersionState.FAILED: 2,
}


def dataset_version_violations(asked: Sequence[UUID], known: Mapping[UUID, str]) -> list[Violation]:
    """Each dataset version a job names must be known and verified (`known`: id -> state)."""
    violations = []
    for index, version_id in enumerate(asked):
        state = known.get(version_id)
        if state is None:
            violations.append(
                Violation(
                    "dataset-version-known",
                    f"dataset_version_ids[{index}]: no dataset version {version_id} is known",
                    "dataset_version_ids",
                )
            )
        elif state != DatasetVersionState.VERIFIED:
            violations.append(
                Violation(
                    "dataset-version-verified",
                    f"dataset_version_ids[{index}]: dataset version {version_id} is {state}; "
                    "only a verified version can be used",
                    "dataset_version_ids",
                )
            )
    return violations


def canonical_gpu_type_id(raw: str) -> str:
    """Ids match case-insensitively: `A100-80GB` and `a100-80gb` are one option."""
    return raw.strip().lower()


def gpu_type_option_violations(gpu_type_id: str, label: str) -> list[Violation]:
    """What is wrong with an option's id (already canonical) and label; empty when valid."""
    violations = []
    if not GPU_TYPE_ID.match(gpu_type_id) or len(gpu_type_id) > MAX_GPU_TYPE_ID_LENGTH:
        violations.append(
            Violation(
                "gpu-type-id-kebab-case",
                f"id '{gpu_type_id}' must be lowercase kebab-case (a-z, 0-9 and single hyphens, "
                f"at most {MAX_GPU_TYPE_ID_LENGTH} characters)",
            )
        )
    if not label.strip():
        violations.append(Violation("gpu-type-label-required", "label must not be empty"))
    return violations


def check_gpu_type_option(gpu_type_id: str, label: str) -> None:
    if violations := gpu_type_option_violations(gpu_type_id, label):
        raise InvalidGpuTypeOption(
            "; ".join(v.message for v in violations),
            violations=[{"rule": v.rule, "message": v.message} for v in violations],
        )


@dataclass(frozen=True)
class JobCheck:
    """The outcome of validating a job: the canonical GPU type, and each rule it breaks."""

    gpu_type: str | None
    violations: list[Violation]

    @property
    def accepted(self) -> bool:
        return not self.violations


def validate_job(
    *,
    env: Env,
    use_gpu: bool,
    gpu_type: str | None,
    gpus: int | None,
    enabled_gpu_types: Collection[str],
    dataset_version_ids: Sequence[UUID] = (),
    dataset_versions: Mapping[UUID, str] | None = None,
) -> JobCheck:
    """Apply the data model's rules; `enabled_gpu_types` are the canonical ids enabled in `env`,
    `dataset_versions` the states of the dataset versions known (see DatasetVersionState)."""
    violations: list[Violation] = []
    canonical = canonical_gpu_type_id(gpu_type) if gpu_type is not None else None
    if canonical == "":
        canonical = None
    if use_gpu:
        if canonical is None:
            violations.append(
                Violation("gpu-type-required", "use_gpu is true, so resources.gpu_type is required")
            )
        elif canonical not in enabled_gpu_types:
            violations.append(
                Violation(
                    "gpu-type-enabled-for-env",
                    f"gpu type '{gpu_type}' is not an enabled GPU type of env '{env}'",
                )
            )
        if gpus is not None and gpus < 1:
            violations.append(
                Violation(
                    "gpu-count-positive", "use_gpu is true, so resources.gpus must be at least 1"
                )
            )
    else:
        if gpu_type is not None:
            violations.append(
                Violation(
                    "gpu-type-without-gpu", "use_gpu is false, so resources.gpu_type must be null"
                )
            )
        if gpus:
            violations.append(
                Violation(
                    "gpus-without-gpu", "use_gpu is false, so resources.gpus must be 0 or absent"
                )
            )
    violations += dataset_version_violations(dataset_version_ids, dataset_versions or {})
    return JobCheck(canonical, violations)


def gpu_count(use_gpu: bool, gpus: int | None) -> int:
    """A GPU job asks for one GPU unless it says how many."""
    if not use_gpu:
        return 0
    return 1 if gpus is None else gpus


def check_cancellable(status: JobStatus) -> None:
    if status.finished:
        raise JobAlreadyFinished(f"the job has already finished: it is {status}")


PYTHON_ENV_IGNORED = (
    "python_env is ignored on the Kubernetes executor: the job's image decides its environment"
)


def job_warnings(executor: str | None, python_env: str | None) -> list[str]:
    """What of a job's request its executor ignores, to tell the one who asked."""
    if executor == TrainingBackend.KUBERNETES and python_env:
        return [PYTHON_ENV_IGNORED]
    return []


def gpu_node_selector(node_label: str | None) -> tuple[str | None, str | None]:
    """An option's node label, `key=value` or just the value under the executor's default key."""
    if not node_label:
        return None, None
    key, sep, value = node_label.partition("=")
    return (key, value) if sep else (None, node_label)
