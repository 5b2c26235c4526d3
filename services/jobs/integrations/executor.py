"""The one interface every training-execution backend implements (local subprocess, Kubernetes)."""

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable
from uuid import UUID


@dataclass(frozen=True)
class JobSpec:
    """What to run. `parameters` reach the process as `--key value` arguments after `command`."""

    job_id: UUID
    name: str
    command: list[str]
    working_dir: str | None = None
    image: str | None = None  # container image; the local executor runs in its own environment
    python_env: str | None = (
        None  # local executor: a virtualenv or conda prefix; Kubernetes: unused
    )
    env: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    use_gpu: bool = False
    gpus: int = 0
    # The node label selecting the GPU model: gpu_node_label is the KEY (default
    # "nvidia.com/gpu.product" in the Kubernetes executor), gpu_type its VALUE.
    gpu_type: str | None = None
    gpu_node_label: str | None = None
    cpu: str | None = None  # Kubernetes quantity, e.g. "4" or "500m"
    memory: str | None = None  # Kubernetes quantity, e.g. "16Gi"
    deadline_seconds: int | None = None
    backoff_limit: int = 0


class ExecutionState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def finished(self) -> bool:
        return self in (ExecutionState.SUCCEEDED, ExecutionState.FAILED, ExecutionState.KILLED)


@dataclass(frozen=True)
class ExecutionStatus:
    state: ExecutionState
    exit_code: int | None = None
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state.finished


class UnknownHandle(LookupError):
    """The executor has no record of this handle (never submitted here)."""


@runtime_checkable
class Executor(Protocol):
    async def submit(self, spec: JobSpec) -> str:
        """Start the job; returns the handle to ask about it later. Submitting twice is harmless."""
        ...

    async def status(self, handle: str) -> ExecutionStatus: ...

    def logs(self, handle: str) -> AsyncIterator[str]:
        """The job's output lines (without the newline), following them while the job runs."""
        ...

    async def cancel(self, handle: str) -> None:
        """Stop the job; a job already finished keeps its final state."""
        ...


def parameter_args(parameters: Mapping[str, Any]) -> list[str]:
    """`{"lr": 0.1, "fast": True}` -> `["--lr", "0.1", "--fast", "true"]`."""
    args: list[str] = []
    for key, value in parameters.items():
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, dict | list):
            rendered = json.dumps(value)
        else:
            rendered = str(value)
        args += [f"--{key}", rendered]
    return args
