"""The local engine's planning, pure Python: given a run's state and one answer (a job ended, a
version was created, a person approved, ...), the run's next state, the events that record the
change and the commands that ask other services for the next stages' work.

The state is exactly what the run's rows hold, so a restarted service plans from the table and
never repeats a finished stage; a late or repeated answer (another attempt's, a finished
stage's) changes nothing.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from services.pipelines.conditions import Reference
from services.pipelines.domain import (
    METRICS,
    PARAMS,
    OrchestrationSystem,
    PipelineDefinition,
    RunStatus,
    StageKind,
    StageSpec,
    StageStatus,
    check_run_transition,
    check_stage_transition,
    condition_subject,
    substitute,
)
from shared.errors import Conflict, NotFound
from shared.events.envelope import EventData
from shared.events.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobRejected,
    JobRequest,
    JobStarted,
    JobSucceeded,
    JobType,
)
from shared.events.pipelines import (
    ModelVersionDeploymentRequested,
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
    PipelineCancelled,
    PipelineFailed,
    PipelinePending,
    PipelineRetrying,
    PipelineRunEvent,
    PipelineStageCancelled,
    PipelineStageFailed,
    PipelineStageRequested,
    PipelineStageSkipped,
    PipelineStageStarted,
    PipelineStageSucceeded,
    PipelineStarted,
    PipelineSucceeded,
    StageJobCancellationRequested,
)
from shared.events.registry import RegistryStageCommandDone

DEFAULT_RUN_MAX_RETRIES = 3


class UnanswerableCondition(Exception):
    """A condition reads a metric the stage did not report, or a value that is not a number."""


class RunFinished(Conflict):
    kind = "pipeline-run-finished"
    title = "The pipeline run has finished"


class RunNotFailed(Conflict):
    kind = "pipeline-run-not-failed"
    title = "Only a failed pipeline run can be retried"


class RunRetriesExhausted(Conflict):
    kind = "pipeline-run-retries-exhausted"
    title = "The pipeline run has no retries left"


class StageNotAwaitingApproval(Conflict):
    kind = "stage-not-awaiting-approval"
    title = "The stage is not waiting for an approval"


class StageNotFound(NotFound):
    kind = "pipeline-stage-not-found"
    title = "The pipeline has no such stage"


@dataclass(frozen=True)
class StageState:
    """One stage of one run: its current attempt (0 before the first) and how it went."""

    name: str
    status: StageStatus = StageStatus.PENDING
    attempt: int = 0
    failures: int = 0  # failed attempts since the run started or was last retried
    job_id: UUID | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    deadline: datetime | None = None


@dataclass(frozen=True)
class RunState:
    id: UUID
    pipeline_id: UUID
    pipeline_name: str
    project_id: UUID
    env: str
    definition: PipelineDefinition
    definition_version: int
    parameters: Mapping[str, Any]
    started_by: str
    status: RunStatus = RunStatus.CREATED
    stages: Mapping[str, StageState] = field(default_factory=dict)
    current_stage: str | None = None
    retry_count: int = 0
    max_retries: int = DEFAULT_RUN_MAX_RETRIES
    start_time: datetime | None = None
    end_time: datetime | None = None
    orchestration_system: OrchestrationSystem = OrchestrationSystem.LOCAL

    def stage(self, name: str) -> StageState:
        return self.stages.get(name) or StageState(name)


# ---- answers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    at: datetime


@dataclass(frozen=True)
class StageStarted:
    stage: str
    attempt: int
    at: datetime
    job_id: UUID | None = None


@dataclass(frozen=True)
class StageSucceeded:
    stage: str
    attempt: int
    at: datetime
    outputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFailed:
    stage: str
    attempt: int
    at: datetime
    reason: str


@dataclass(frozen=True)
class Approve:
    stage: str
    actor: str
    at: datetime
    approved: bool = True
    comment: str | None = None


@dataclass(frozen=True)
class Cancel:
    actor: str
    at: datetime


@dataclass(frozen=True)
class Retry:
    actor: str
    at: datetime


@dataclass(frozen=True)
class Tick:
    """Time passed: a stage past its timeout fails its attempt."""

    at: datetime


Answer = Start | StageStarted | StageSucceeded | StageFailed | Approve | Cancel | Retry | Tick


def answer_of_job_event(data: JobEvent, at: datetime) -> Answer | None:
    """The answer a job event gives the stage attempt it names; None for other job events."""
    if data.pipeline_stage is None or data.pipeline_attempt is None:
        return None
    stage, attempt = data.pipeline_stage, data.pipeline_attempt
    match data:
        case JobStarted():
            return StageStarted(stage, attempt, at, job_id=data.job_id)
        case JobSucceeded():
            outputs = {
                "job_id": str(data.job_id),
                "run_id": data.run_id,
                "artifact_uri": data.artifact_uri,
                METRICS: dict(data.metrics),
            }
            return StageSucceeded(stage, attempt, at, outputs)
        case JobFailed():
            detail = data.message or (
                f"exit code {data.exit_code}" if data.exit_code is not None else "no reason given"
            )
            return StageFailed(stage, attempt, at, f"job {data.job_id} failed: {detail}")
        case JobRejected():
            rules = "; ".join(v.message for v in data.violations)
            return StageFailed(stage, attempt, at, f"job {data.job_id} was rejected: {rules}")
        case JobCancelled():
            return StageFailed(stage, attempt, at, f"job {data.job_id} was cancelled")
    return None


def answer_of_registry_command(done: RegistryStageCommandDone, at: datetime) -> Answer:
    """A register stage's outputs are the version made; a promote stage's, the stage it is in."""
    outputs = {"model_id": str(done.model_id), "version_id": str(done.version_id)}
    if done.command == ModelVersionRegistrationRequested.subject:
        outputs["version"] = done.version
    else:
        outputs["stage"] = done.stage
    return StageSucceeded(done.pipeline_stage, done.pipeline_attempt, at, outputs)


def answer_of_deployment(
    data: Mapping[str, Any], stage: str, attempt: int, healthy: bool, at: datetime
) -> Answer:
    """Serving's DeploymentHealthy or DeploymentFailed (read from its data's fields)."""
    if not healthy:
        return StageFailed(
            stage,
            attempt,
            at,
            f"deployment {data.get('deployment_id')} failed: {data.get('reason')}",
        )
    outputs = {
        "deployment_id": data.get("deployment_id"),
        "endpoint_id": data.get("endpoint_id"),
        "version_id": data.get("model_version_id"),
    }
    return StageSucceeded(stage, attempt, at, outputs)


# ---- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The run after an answer, which stages changed, and what to write to the outbox."""

    run: RunState
    changed_stages: tuple[str, ...]
    events: tuple[EventData, ...]
    commands: tuple[EventData, ...]

    @property
    def changed(self) -> bool:
        return bool(self.events or self.commands)


def new_run(
    *,
    id: UUID,
    pipeline_id: UUID,
    pipeline_name: str,
    project_id: UUID,
    env: str,
    definition: PipelineDefinition,
    definition_version: int,
    parameters: Mapping[str, Any],
    started_by: str,
    max_retries: int = DEFAULT_RUN_MAX_RETRIES,
    orchestration_system: OrchestrationSystem = OrchestrationSystem.LOCAL,
) -> RunState:
    """A created run: every stage pending, the definition's defaults under the given parameters."""
    return RunState(
        id=id,
        pipeline_id=pipeline_id,
        pipeline_name=pipeline_name,
        project_id=project_id,
        env=env,
        definition=definition,
        definition_version=definition_version,
        parameters={**definition.parameters, **parameters},
        started_by=started_by,
        stages={name: StageState(name) for name in definition.names()},
        max_retries=max_retries,
        orchestration_system=orchestration_system,
    )


def plan(run: RunState, answer: Answer) -> Plan:
    """What `answer` does to `run`. Raises a Problem for a request the run cannot take (cancel a
    finished run, approve a stage not waiting); an answer that no longer applies is a no-op."""
    step = _Step(run, answer.at)
    match answer:
        case Start():
            step.start()
        case StageStarted(stage, attempt, _, job_id):
            if step.is_current(stage, attempt):
                step.stage_started(stage, job_id)
        case StageSucceeded(stage, attempt, _, outputs):
            if step.is_current(stage, attempt):
                step.stage_succeeded(stage, outputs)
        case StageFailed(stage, attempt, _, reason):
            if step.is_current(stage, attempt):
                step.attempt_failed(stage, reason)
        case Approve():
            step.approve(answer)
        case Cancel(actor):
            step.cancel(actor)
        case Retry(actor):
            step.retry(actor)
        case Tick():
            step.check_deadlines()
    # Only the local engine schedules stages; another orchestrator is reconciled with instead.
    if run.orchestration_system == OrchestrationSystem.LOCAL and step.run_status in (
        RunStatus.PENDING,
        RunStatus.RUNNING,
        RunStatus.RETRYING,
    ):
        step.advance()
    return step.plan()


class _Step:
    """One planning step: the run's state as it changes, and what the changes publish."""

    def __init__(self, run: RunState, at: datetime) -> None:
        self.original = run
        self.definition = run.definition
        self.at = at
        self.run_status = run.status
        self.stages = dict(run.stages)
        self.retry_count = run.retry_count
        self.start_time, self.end_time = run.start_time, run.end_time
        self.current_stage = run.current_stage
        self.changed: dict[str, None] = {}
        self.events: list[EventData] = []
        self.commands: list[EventData] = []

    # -- state ---------------------------------------------------------------------------------

    def spec(self, name: str) -> StageSpec:
        return self.definition.stage(name)

    def stage(self, name: str) -> StageState:
        return self.stages.get(name) or StageState(name)

    def set_stage(self, name: str, **changes: Any) -> StageState:
        stage = self.stage(name)
        if "status" in changes and changes["status"] != stage.status:
            check_stage_transition(name, stage.status, changes["status"])
        stage = replace(stage, **changes)
        self.stages[name] = stage
        self.changed[name] = None
        return stage

    def is_current(self, name: str, attempt: int) -> bool:
        stage = self.stages.get(name)
        return (
            stage is not None
            and stage.attempt == attempt
            and stage.status.active
            and not self.run_status.finished
        )

    def active(self) -> list[str]:
        return [n for n in self.definition.names() if self.stage(n).status.active]

    def set_run(self, status: RunStatus, event: type[PipelineRunEvent], **fields: Any) -> None:
        check_run_transition(self.run_status, status)
        self.run_status = status
        if status.finished:
            self.end_time = self.at
        self.current_stage = self._current_stage()
        self.events.append(event(**self._run_fields(), **fields))

    def _current_stage(self) -> str | None:
        active = self.active()
        return active[0] if active else self.current_stage

    def _run_fields(self) -> dict[str, Any]:
        run = self.original
        return {
            "pipeline_id": run.pipeline_id,
            "pipeline_run_id": run.id,
            "pipeline_name": run.pipeline_name,
            "project_id": run.project_id,
            "status": str(self.run_status),
            "current_stage": self.current_stage,
            "retry_count": self.retry_count,
            "at": self.at,
        }

    def _stage_fields(self, name: str) -> dict[str, Any]:
        return {
            "pipeline_id": self.original.pipeline_id,
            "pipeline_run_id": self.original.id,
            "stage": name,
            "kind": str(self.spec(name).kind),
            "attempt": self.stage(name).attempt,
            "at": self.at,
        }

    def _command_fields(self, name: str) -> dict[str, Any]:
        return {
            "pipeline_run_id": self.original.id,
            "stage": name,
            "attempt": self.stage(name).attempt,
            "requested_by": self._approved_by(name) or self.original.started_by,
            "project_id": self.original.project_id,
        }

    def _approved_by(self, name: str) -> str | None:
        """The person the nearest upstream approve stage waited for, if any."""
        for upstream in reversed(self.definition.names()):
            if (
                upstream in self.definition.ancestors(name)
                and self.spec(upstream).kind == StageKind.APPROVE
            ):
                return self.stage(upstream).outputs.get("approved_by")
        return None

    # -- answers -------------------------------------------------------------------------------

    def start(self) -> None:
        self.start_time = self.at
        self.set_run(
            RunStatus.PENDING,
            PipelinePending,
            definition_version=self.original.definition_version,
            parameters=dict(self.original.parameters),
            orchestration_system=str(self.original.orchestration_system),
        )

    def stage_started(self, name: str, job_id: UUID | None = None) -> None:
        stage = self.stage(name)
        if stage.status != StageStatus.REQUESTED:
            return
        self.set_stage(name, status=StageStatus.RUNNING, job_id=job_id or stage.job_id)
        self.events.append(PipelineStageStarted(**self._stage_fields(name), job_id=job_id))
        if self.run_status in (RunStatus.PENDING, RunStatus.RETRYING):
            self.set_run(RunStatus.RUNNING, PipelineStarted)

    def stage_succeeded(self, name: str, outputs: Mapping[str, Any]) -> None:
        spec = self.spec(name)
        if spec.kind == StageKind.PROMOTE and outputs.get("stage") != substitute(
            spec.parameters["stage"], self.resolve
        ):
            return  # the registry's other move of that promotion (the former version archived)
        self.stage_started(name, _uuid(outputs.get("job_id")))
        self.set_stage(
            name,
            status=StageStatus.SUCCEEDED,
            outputs=dict(outputs),
            ended_at=self.at,
            deadline=None,
            reason=None,
        )
        self.events.append(
            PipelineStageSucceeded(**self._stage_fields(name), outputs=dict(outputs))
        )

    def attempt_failed(self, name: str, reason: str, *, retry: bool = True) -> None:
        spec, stage = self.spec(name), self.stage(name)
        failures = stage.failures + 1
        will_retry = retry and failures <= spec.max_retries
        self.set_stage(
            name,
            status=StageStatus.FAILED,
            failures=failures,
            reason=reason,
            ended_at=self.at,
            deadline=None,
        )
        self.events.append(
            PipelineStageFailed(**self._stage_fields(name), reason=reason, will_retry=will_retry)
        )
        if not will_retry:
            self.fail_run(name, f"stage {name} failed: {reason}")
            return
        if self.run_status == RunStatus.RUNNING:
            self.set_run(
                RunStatus.RETRYING,
                PipelineRetrying,
                stage=name,
                attempt=stage.attempt + 1,
                reason=reason,
            )
        self.set_stage(name, status=StageStatus.PENDING)
        self.request(name)

    def fail_run(self, name: str | None, reason: str) -> None:
        self.stop_active(f"the run failed: {reason}")
        self.set_run(RunStatus.FAILED, PipelineFailed, failed_stage=name, reason=reason)

    def stop_active(self, reason: str) -> None:
        """Cancel every stage still at work, killing the jobs of those that run one."""
        for name in self.active():
            if self.spec(name).kind.runs_a_job:
                self.commands.append(
                    StageJobCancellationRequested(**self._command_fields(name), reason=reason)
                )
            self.set_stage(
                name, status=StageStatus.CANCELLED, reason=reason, ended_at=self.at, deadline=None
            )
            self.events.append(PipelineStageCancelled(**self._stage_fields(name), reason=reason))

    def approve(self, answer: Approve) -> None:
        if answer.stage not in self.stages:
            raise StageNotFound(f"the pipeline has no stage '{answer.stage}'")
        if self.run_status.finished:
            raise RunFinished(f"the run has already {self.run_status}")
        stage = self.stage(answer.stage)
        if self.spec(answer.stage).kind != StageKind.APPROVE or stage.status != StageStatus.RUNNING:
            raise StageNotAwaitingApproval(
                f"stage {answer.stage} is a {self.spec(answer.stage).kind} stage that is "
                f"{stage.status}, not an approve stage waiting for a person"
            )
        if answer.approved:
            self.stage_succeeded(
                answer.stage, {"approved_by": answer.actor, "comment": answer.comment}
            )
        else:
            detail = f": {answer.comment}" if answer.comment else ""
            self.attempt_failed(answer.stage, f"rejected by {answer.actor}{detail}", retry=False)

    def cancel(self, actor: str) -> None:
        if self.run_status.finished:
            raise RunFinished(f"the run has already {self.run_status}")
        self.stop_active(f"the run was cancelled by {actor}")
        self.set_run(RunStatus.CANCELLED, PipelineCancelled, cancelled_by=actor)

    def retry(self, actor: str) -> None:
        if self.run_status != RunStatus.FAILED:
            raise RunNotFailed(f"the run is {self.run_status}; only a failed run is retried")
        if self.retry_count >= self.original.max_retries:
            raise RunRetriesExhausted(f"the run was retried {self.retry_count} times, its most")
        for name in self.definition.names():
            if self.stage(name).status in (StageStatus.FAILED, StageStatus.CANCELLED):
                self.set_stage(name, status=StageStatus.PENDING, failures=0, reason=None)
        self.retry_count += 1
        self.end_time = None
        self.set_run(
            RunStatus.RETRYING,
            PipelineRetrying,
            stage=None,
            attempt=None,
            reason=f"retried by {actor} from the failed stages on",
        )

    def check_deadlines(self) -> None:
        for name in self.active():
            stage = self.stage(name)
            if (
                stage.deadline is not None
                and stage.deadline <= self.at
                and not self.run_status.finished
            ):
                reason = f"timed out after {self.spec(name).timeout_seconds} s"
                if self.spec(name).kind.runs_a_job:
                    self.commands.append(
                        StageJobCancellationRequested(**self._command_fields(name), reason=reason)
                    )
                self.attempt_failed(name, reason)

    # -- scheduling ----------------------------------------------------------------------------

    def advance(self) -> None:
        """Skip or request every stage whose dependencies have all finished, until none is left;
        then, with nothing at work and every stage done, the run has succeeded."""
        progressed = True
        while progressed and not self.run_status.finished:
            progressed = False
            for name in self.definition.names():
                if self.stage(name).status != StageStatus.PENDING or self.run_status.finished:
                    continue
                deps = [self.stage(d).status for d in self.spec(name).depends_on]
                if StageStatus.SKIPPED in deps:
                    skipped = next(
                        d
                        for d in self.spec(name).depends_on
                        if self.stage(d).status == StageStatus.SKIPPED
                    )
                    self.skip(name, f"stage {skipped} was skipped")
                    progressed = True
                elif all(status == StageStatus.SUCCEEDED for status in deps):
                    self.run_if(name)
                    progressed = True
        done = (StageStatus.SUCCEEDED, StageStatus.SKIPPED)
        if not self.run_status.finished and all(
            self.stage(n).status in done for n in self.definition.names()
        ):
            if self.run_status != RunStatus.RUNNING:
                self.set_run(RunStatus.RUNNING, PipelineStarted)
            self.set_run(RunStatus.SUCCEEDED, PipelineSucceeded)

    def skip(self, name: str, reason: str) -> None:
        self.set_stage(name, status=StageStatus.SKIPPED, reason=reason, ended_at=self.at)
        self.events.append(PipelineStageSkipped(**self._stage_fields(name), reason=reason))

    def run_if(self, name: str) -> None:
        condition = self.spec(name).condition
        if condition is not None:
            values: dict[str, float] = {}

            def lookup(reference: Reference) -> float:
                value = self.condition_value(name, reference)
                values[".".join(reference)] = value
                return value

            try:
                holds = condition.evaluate(lookup)
            except UnanswerableCondition as error:
                self.set_stage(name, attempt=self.stage(name).attempt + 1)
                self.attempt_failed(
                    name, f"condition {condition.text!r}: {error.args[0]}", retry=False
                )
                return
            if not holds:
                read = ", ".join(f"{k} = {v:g}" for k, v in values.items())
                self.skip(name, f"condition {condition.text!r} is false ({read})")
                return
        self.request(name)

    def condition_value(self, name: str, reference: Reference) -> float:
        spec = self.spec(name)
        subject = condition_subject(spec, reference)
        if subject is None:
            value, what = self.original.parameters.get(reference[1]), f"parameter {reference[1]}"
        else:
            upstream, metric = subject
            value = (self.stage(upstream).outputs.get(METRICS) or {}).get(metric)
            what = f"stage {upstream}'s metric {metric}"
            if value is None:
                raise UnanswerableCondition(f"stage {upstream} reported no metric '{metric}'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnanswerableCondition(f"{what} is {value!r}, not a number")
        return float(value)

    def resolve(self, reference: Reference) -> Any:
        head, rest = reference[0], reference[1:]
        if head == PARAMS:
            return self.original.parameters.get(rest[0])
        outputs = self.stage(head).outputs
        value = outputs.get(rest[0])
        if rest[0] == METRICS and len(rest) == 2:
            return (value or {}).get(rest[1])
        return value

    def request(self, name: str) -> None:
        """Ask for the stage's next attempt: a job, a command to the registry or serving, or (an
        approve stage) nothing but to wait for a person."""
        spec, stage = self.spec(name), self.stage(name)
        deadline = (
            self.at + timedelta(seconds=spec.timeout_seconds) if spec.timeout_seconds else None
        )
        self.set_stage(
            name,
            status=StageStatus.REQUESTED,
            attempt=stage.attempt + 1,
            job_id=None,
            outputs={},
            reason=None,
            started_at=self.at,
            ended_at=None,
            deadline=deadline,
        )
        parameters = substitute(dict(spec.parameters), self.resolve)
        try:
            command = self.command(name, spec, parameters)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            self.attempt_failed(
                name, f"its parameters do not make a request: {problems}", retry=False
            )
            return
        if command is not None:
            self.commands.append(command)
        if not spec.kind.runs_a_job:
            self.stage_started(name)

    def command(self, name: str, spec: StageSpec, parameters: dict[str, Any]) -> EventData | None:
        fields = self._command_fields(name)
        match spec.kind:
            case StageKind.TRAIN | StageKind.EVALUATE:
                job = JobRequest.model_validate(
                    {
                        **parameters,
                        "name": f"{self.original.pipeline_name}-{name}",
                        "project_id": self.original.project_id,
                        "env": self.original.env,
                        "job_type": JobType.TRAINING
                        if spec.kind == StageKind.TRAIN
                        else JobType.EVALUATION,
                    }
                )
                fields.pop("requested_by")
                fields.pop("project_id")
                return PipelineStageRequested(**fields, job=job)
            case StageKind.REGISTER:
                return ModelVersionRegistrationRequested.model_validate(
                    {**fields, **_without_none(parameters)}
                )
            case StageKind.PROMOTE:
                return ModelVersionPromotionRequested.model_validate(
                    {
                        **fields,
                        "version_id": parameters["version_id"],
                        "to_stage": parameters["stage"],
                        "comment": parameters.get("comment"),
                        # With no approve stage before it, a move to production was approved by
                        # who started (or retried) the run: the service lets only approvers.
                        "approved_by": self._approved_by(name)
                        or (
                            self.original.started_by
                            if parameters["stage"] == "production"
                            else None
                        ),
                    }
                )
            case StageKind.DEPLOY:
                return ModelVersionDeploymentRequested.model_validate({**fields, **parameters})
        return None

    def plan(self) -> Plan:
        self.current_stage = self._current_stage()
        run = replace(
            self.original,
            status=self.run_status,
            stages=dict(self.stages),
            current_stage=self.current_stage,
            retry_count=self.retry_count,
            start_time=self.start_time,
            end_time=self.end_time,
        )
        return Plan(run, tuple(self.changed), tuple(self.events), tuple(self.commands))


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# ---- runs another system orchestrates --------------------------------------------------------


class ObservedStage(Protocol):
    """One stage as the orchestrator reports it (Argo's StageObservation), read-only."""

    @property
    def status(self) -> StageStatus: ...
    @property
    def attempt(self) -> int: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def ended_at(self) -> datetime | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...


RUN_EVENTS: dict[RunStatus, type[PipelineRunEvent]] = {
    RunStatus.RUNNING: PipelineStarted,
    RunStatus.SUCCEEDED: PipelineSucceeded,
    RunStatus.FAILED: PipelineFailed,
    RunStatus.CANCELLED: PipelineCancelled,
}


def reconcile(
    run: RunState,
    status: RunStatus,
    observed: Mapping[str, ObservedStage],
    at: datetime,
    *,
    message: str | None = None,
) -> Plan:
    """Take over what an orchestrator (Argo) reports: each stage's new state and the run's,
    with the events a local run would have published for the same changes. Between two looks
    a stage may have gone from pending to its end: it is reported started, then ended."""
    step = _Step(run, at)
    for name in run.definition.names():
        seen = observed.get(name)
        if seen is None:
            continue
        before = step.stage(name)
        if (seen.status, seen.attempt, dict(seen.outputs)) == (
            before.status,
            before.attempt,
            dict(before.outputs),
        ):
            continue
        at_work_or_done = seen.status not in (StageStatus.PENDING, StageStatus.SKIPPED)
        if (
            at_work_or_done
            and before.status in (StageStatus.PENDING, StageStatus.REQUESTED)
            and seen.status != StageStatus.REQUESTED
        ):
            step.stages[name] = replace(before, attempt=max(seen.attempt, 1))
            step.events.append(PipelineStageStarted(**step._stage_fields(name)))
        step.stages[name] = replace(
            before,
            status=seen.status,
            attempt=max(seen.attempt, before.attempt),
            outputs=dict(seen.outputs),
            reason=seen.message,
            started_at=seen.started_at or before.started_at,
            ended_at=seen.ended_at,
        )
        step.changed[name] = None
        fields = step._stage_fields(name)
        match seen.status:
            case StageStatus.SUCCEEDED:
                step.events.append(PipelineStageSucceeded(**fields, outputs=dict(seen.outputs)))
            case StageStatus.FAILED:
                step.events.append(
                    PipelineStageFailed(**fields, reason=seen.message or "failed", will_retry=False)
                )
            case StageStatus.SKIPPED:
                step.events.append(
                    PipelineStageSkipped(**fields, reason=seen.message or "its condition was false")
                )
            case StageStatus.CANCELLED:
                step.events.append(PipelineStageCancelled(**fields, reason=seen.message or ""))
    if status != step.run_status and not step.run_status.finished:
        if status.finished and step.run_status == RunStatus.PENDING:
            step.set_run(RunStatus.RUNNING, PipelineStarted)
        if status != step.run_status and status in RUN_EVENTS:
            extra: dict[str, Any] = {}
            if status == RunStatus.FAILED:
                failed = next(
                    (
                        n
                        for n in run.definition.names()
                        if step.stage(n).status == StageStatus.FAILED
                    ),
                    None,
                )
                extra = {"failed_stage": failed, "reason": message or "the workflow failed"}
            elif status == RunStatus.CANCELLED:
                extra = {"cancelled_by": "argo"}
            step.set_run(status, RUN_EVENTS[status], **extra)
    return step.plan()
