"""Whole runs of the local engine driven by fed answers, without I/O: what each answer changes,
which events record it and which commands ask for the next stages."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.pipelines.domain import IllegalRunTransition, RunStatus, StageStatus, parse_definition
from services.pipelines.engine import (
    Approve,
    Cancel,
    Plan,
    Retry,
    RunFinished,
    RunNotFailed,
    RunRetriesExhausted,
    RunState,
    StageNotAwaitingApproval,
    StageNotFound,
    StageStarted,
    StageSucceeded,
    Start,
    Tick,
    answer_of_job_event,
    new_run,
    plan,
)
from shared.events.jobs import JobFailed, JobRejected, JobStarted, JobSucceeded, RuleViolation
from shared.events.pipelines import (
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
    PipelineStageRequested,
    StageJobCancellationRequested,
)
from tests.pipelines.definitions import MODEL_ID, release_pipeline, stage

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
PROJECT = uuid.uuid4()


class Driver:
    """Feeds answers to a run as the service would: each plan's run is the next state."""

    def __init__(self, raw: dict, **parameters: object) -> None:
        self.run = new_run(
            id=uuid.uuid4(),
            pipeline_id=uuid.uuid4(),
            pipeline_name="fraud",
            project_id=PROJECT,
            env="dev",
            definition=parse_definition(raw),
            definition_version=1,
            parameters=parameters,
            started_by="alice@example.com",
        )
        self.clock = T0
        self.events: list = []
        self.commands: list = []

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def feed(self, answer) -> Plan:
        result = plan(self.run, answer)
        self.run = result.run
        self.events.extend(result.events)
        self.commands.extend(result.commands)
        return result

    def start(self) -> Plan:
        return self.feed(Start(self.now()))

    def attempt(self, name: str) -> int:
        return self.run.stages[name].attempt

    def job_started(self, name: str) -> Plan:
        return self.feed(StageStarted(name, self.attempt(name), self.now(), job_id=uuid.uuid4()))

    def job_succeeded(self, name: str, **metrics: float) -> Plan:
        self.job_started(name)
        job = JobSucceeded(
            job_id=uuid.uuid4(),
            name=name,
            project_id=PROJECT,
            pipeline_run_id=self.run.id,
            pipeline_stage=name,
            pipeline_attempt=self.attempt(name),
            run_id=f"mlflow-{name}",
            metrics=metrics,
            artifact_uri=f"file:///{name}",
        )
        return self.feed(answer_of_job_event(job, self.now()))

    def job_failed(self, name: str, message: str = "exit 1") -> Plan:
        job = JobFailed(
            job_id=uuid.uuid4(),
            name=name,
            project_id=PROJECT,
            pipeline_run_id=self.run.id,
            pipeline_stage=name,
            pipeline_attempt=self.attempt(name),
            run_id=None,
            exit_code=1,
            message=message,
        )
        return self.feed(answer_of_job_event(job, self.now()))

    def succeeded(self, name: str, **outputs: object) -> Plan:
        return self.feed(StageSucceeded(name, self.attempt(name), self.now(), outputs))

    def status(self) -> dict[str, str]:
        return {name: str(s.status) for name, s in self.run.stages.items()}

    def subjects(self) -> list[str]:
        return [e.subject.removeprefix("pipelines.") for e in self.events]

    def requested(self) -> list[tuple[str, int]]:
        return [
            (c.stage, c.attempt)
            for c in self.commands
            if not isinstance(c, StageJobCancellationRequested)
        ]


def test_the_release_pipeline_runs_to_production_once_approved():
    run = Driver(release_pipeline(threshold=0.9))
    run.start()
    assert run.run.status == RunStatus.PENDING
    [train] = run.commands
    assert isinstance(train, PipelineStageRequested) and train.attempt == 1
    assert (train.job.name, train.job.job_type, train.job.project_id) == (
        "fraud-train",
        "training",
        PROJECT,
    )

    run.job_started("train")
    assert run.run.status == RunStatus.RUNNING and run.run.current_stage == "train"
    run.job_succeeded("train", loss=0.2)
    evaluate = run.commands[-1]
    assert evaluate.stage == "evaluate" and evaluate.job.job_type == "evaluation"
    # The train stage's run id reached the evaluation's command line and parameters.
    assert evaluate.job.command[-1] == "mlflow-train"
    assert evaluate.job.parameters == {"run_id": "mlflow-train"}

    run.job_succeeded("evaluate", auc=0.93)
    register = run.commands[-1]
    assert isinstance(register, ModelVersionRegistrationRequested)
    assert (str(register.model_id), register.run_id, register.metrics) == (
        MODEL_ID,
        "mlflow-train",
        {"auc": 0.93},
    )
    assert register.requested_by == "alice@example.com"
    version_id = str(uuid.uuid4())
    run.succeeded("register", version_id=version_id, model_id=MODEL_ID, version="1")
    staging = run.commands[-1]
    assert isinstance(staging, ModelVersionPromotionRequested)
    assert (str(staging.version_id), staging.to_stage, staging.approved_by) == (
        version_id,
        "staging",
        None,
    )

    run.succeeded("staging", version_id=version_id, stage="staging")
    assert run.run.stages["approve"].status == StageStatus.RUNNING
    assert run.run.current_stage == "approve" and run.run.status == RunStatus.RUNNING
    commands_before = len(run.commands)
    run.feed(Approve("approve", "bob@example.com", run.now(), comment="looks good"))
    production = run.commands[-1]
    assert len(run.commands) == commands_before + 1
    assert (production.to_stage, production.approved_by, production.requested_by) == (
        "production",
        "bob@example.com",
        "bob@example.com",
    )
    assert production.comment == "approved by bob@example.com"

    run.succeeded("production", version_id=version_id, stage="production")
    assert run.run.status == RunStatus.SUCCEEDED
    assert set(run.status().values()) == {"succeeded"}
    assert run.run.end_time is not None and run.run.start_time == T0 + timedelta(seconds=1)
    assert run.requested() == [
        (n, 1) for n in ["train", "evaluate", "register", "staging", "production"]
    ]
    assert run.subjects()[:3] == ["run.pending", "stage.started", "run.started"]
    assert run.subjects()[-2:] == ["stage.succeeded", "run.succeeded"]
    assert run.subjects().count("stage.started") == 6
    assert run.subjects().count("stage.succeeded") == 6


def test_the_false_branch_skips_the_stage_and_its_dependents():
    run = Driver(release_pipeline(threshold=0.9))
    run.start()
    run.job_succeeded("train")
    run.job_succeeded("evaluate", auc=0.85)
    assert run.run.status == RunStatus.SUCCEEDED
    assert run.status() == {
        "train": "succeeded",
        "evaluate": "succeeded",
        "register": "skipped",
        "staging": "skipped",
        "approve": "skipped",
        "production": "skipped",
    }
    skipped = [e for e in run.events if e.subject == "pipelines.stage.skipped"]
    assert [e.reason for e in skipped] == [
        "condition 'auc >= params.threshold' is false (auc = 0.85, params.threshold = 0.9)",
        "stage register was skipped",
        "stage staging was skipped",
        "stage approve was skipped",
    ]
    assert run.requested() == [("train", 1), ("evaluate", 1)]


def test_a_run_parameter_overrides_the_definitions_default():
    run = Driver(release_pipeline(threshold=0.9), threshold=0.8)
    run.start()
    run.job_succeeded("train")
    run.job_succeeded("evaluate", auc=0.85)
    assert run.run.stages["register"].status == StageStatus.RUNNING


def test_a_missing_metric_fails_the_run_instead_of_guessing():
    run = Driver(release_pipeline())
    run.start()
    run.job_succeeded("train")
    run.job_succeeded("evaluate", accuracy=0.99)
    assert run.run.status == RunStatus.FAILED
    assert run.run.stages["register"].reason == (
        "condition 'auc >= params.threshold': stage evaluate reported no metric 'auc'"
    )


def test_a_stage_that_fails_twice_with_one_retry_fails_the_run():
    run = Driver(
        {"stages": [stage("train", "train", max_retries=1), stage("next", "train", "train")]}
    )
    run.start()
    run.job_started("train")
    run.job_failed("train", "out of memory")
    assert run.run.status == RunStatus.RETRYING
    assert run.run.stages["train"].status == StageStatus.REQUESTED
    assert run.requested() == [("train", 1), ("train", 2)]
    # A late answer about the first attempt changes nothing.
    late = run.feed(StageSucceeded("train", 1, run.now(), {}))
    assert not late.changed and run.run.stages["train"].attempt == 2

    run.job_started("train")
    assert run.run.status == RunStatus.RUNNING
    run.job_failed("train", "out of memory again")
    assert run.run.status == RunStatus.FAILED
    assert run.status() == {"train": "failed", "next": "pending"}
    assert run.requested() == [("train", 1), ("train", 2)]
    failed = [e for e in run.events if e.subject == "pipelines.stage.failed"]
    assert [(e.attempt, e.will_retry) for e in failed] == [(1, True), (2, False)]
    assert run.events[-1].subject == "pipelines.run.failed"
    assert run.events[-1].reason.startswith("stage train failed: job ")
    assert run.events[-1].reason.endswith(" failed: out of memory again")
    assert run.subjects().count("run.retrying") == 1


def test_a_failed_run_is_retried_from_its_failed_stage_on():
    run = Driver(
        {"stages": [stage("a", "train"), stage("b", "train", "a"), stage("c", "train", "b")]}
    )
    run.start()
    run.job_succeeded("a")
    run.job_failed("b")
    assert run.run.status == RunStatus.FAILED
    run.feed(Retry("carol@example.com", run.now()))
    assert run.run.status == RunStatus.RETRYING and run.run.retry_count == 1
    assert run.run.end_time is None
    run.job_succeeded("b")
    run.job_succeeded("c")
    assert run.run.status == RunStatus.SUCCEEDED
    assert run.requested() == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    with pytest.raises(RunNotFailed):
        plan(run.run, Retry("carol@example.com", run.now()))


def test_retries_of_a_run_are_limited():
    run = Driver({"stages": [stage("a", "train")]})
    run.start()
    run.run = RunState(**{**run.run.__dict__, "max_retries": 1})
    run.job_failed("a")
    run.feed(Retry("carol", run.now()))
    run.job_failed("a")
    with pytest.raises(RunRetriesExhausted):
        plan(run.run, Retry("carol", run.now()))


def test_independent_stages_run_in_parallel_and_join():
    run = Driver(
        {
            "stages": [
                stage("prep", "train"),
                stage("left", "train", "prep"),
                stage("right", "train", "prep"),
                stage("join", "evaluate", "left", "right"),
            ]
        }
    )
    run.start()
    run.job_succeeded("prep")
    assert run.requested() == [("prep", 1), ("left", 1), ("right", 1)]
    run.job_succeeded("right")
    assert run.run.stages["join"].status == StageStatus.PENDING
    run.job_succeeded("left")
    assert run.requested()[-1] == ("join", 1)
    run.job_succeeded("join")
    assert run.run.status == RunStatus.SUCCEEDED


def test_a_final_failure_cancels_the_stages_still_at_work():
    run = Driver({"stages": [stage("left", "train"), stage("right", "train")]})
    run.start()
    run.job_started("left")
    run.job_failed("right")
    assert run.run.status == RunStatus.FAILED
    assert run.status() == {"left": "cancelled", "right": "failed"}
    [kill] = [c for c in run.commands if isinstance(c, StageJobCancellationRequested)]
    assert (kill.stage, kill.attempt) == ("left", 1)


def test_cancel_mid_run_kills_the_running_job_and_ignores_later_answers():
    run = Driver(release_pipeline())
    run.start()
    run.job_started("train")
    run.feed(Cancel("dave@example.com", run.now()))
    assert run.run.status == RunStatus.CANCELLED
    assert run.status()["train"] == "cancelled"
    kill = run.commands[-1]
    assert isinstance(kill, StageJobCancellationRequested)
    assert (kill.stage, kill.attempt, kill.reason) == (
        "train",
        1,
        "the run was cancelled by dave@example.com",
    )
    assert run.events[-1].subject == "pipelines.run.cancelled"
    assert run.events[-1].cancelled_by == "dave@example.com"
    late = run.job_succeeded("train")
    assert not late.changed and run.run.status == RunStatus.CANCELLED
    with pytest.raises(RunFinished):
        plan(run.run, Cancel("dave@example.com", run.now()))
    with pytest.raises(RunNotFailed):
        plan(run.run, Retry("dave@example.com", run.now()))


def test_approval_is_only_for_an_approve_stage_that_waits():
    run = Driver(release_pipeline())
    run.start()
    with pytest.raises(StageNotAwaitingApproval):
        plan(run.run, Approve("approve", "bob", run.now()))
    with pytest.raises(StageNotAwaitingApproval):
        plan(run.run, Approve("train", "bob", run.now()))
    with pytest.raises(StageNotFound):
        plan(run.run, Approve("nope", "bob", run.now()))


def test_a_rejected_approval_fails_the_run():
    run = Driver({"stages": [stage("gate", "approve"), stage("after", "train", "gate")]})
    run.start()
    assert run.run.status == RunStatus.RUNNING and run.requested() == []
    run.feed(Approve("gate", "bob", run.now(), approved=False, comment="not now"))
    assert run.run.status == RunStatus.FAILED
    assert run.run.stages["gate"].reason == "rejected by bob: not now"


def test_a_stage_past_its_timeout_fails_its_attempt_and_its_job_is_killed():
    run = Driver({"stages": [stage("train", "train", timeout_seconds=60, max_retries=1)]})
    run.start()
    run.job_started("train")
    assert not plan(run.run, Tick(T0 + timedelta(seconds=30))).changed
    run.feed(Tick(T0 + timedelta(seconds=62)))
    kill, again = run.commands[-2:]
    assert isinstance(kill, StageJobCancellationRequested) and kill.attempt == 1
    assert kill.reason == "timed out after 60 s"
    assert isinstance(again, PipelineStageRequested) and again.attempt == 2
    assert run.run.status == RunStatus.RETRYING


def test_a_rejected_job_fails_its_stage_with_the_rules_it_broke():
    run = Driver({"stages": [stage("train", "train")]})
    run.start()
    rejected = JobRejected(
        job_id=uuid.uuid4(),
        name="x",
        project_id=PROJECT,
        pipeline_run_id=run.run.id,
        pipeline_stage="train",
        pipeline_attempt=1,
        env="dev",
        violations=[RuleViolation(rule="gpu-type-required", message="gpu type required")],
    )
    run.feed(answer_of_job_event(rejected, run.now()))
    assert run.run.status == RunStatus.FAILED
    assert run.run.stages["train"].reason.endswith("was rejected: gpu type required")


def test_replanning_from_the_stored_state_repeats_no_finished_stage():
    """A restart plans from what the table holds: the same answer again asks for nothing."""
    run = Driver(release_pipeline())
    run.start()
    started = JobStarted(
        job_id=uuid.uuid4(),
        name="t",
        project_id=PROJECT,
        pipeline_run_id=run.run.id,
        pipeline_stage="train",
        pipeline_attempt=1,
        executor="local",
        run_id=None,
    )
    run.feed(answer_of_job_event(started, run.now()))
    run.job_succeeded("train")
    stored = run.run
    again = plan(stored, StageSucceeded("train", 1, run.now(), {}))
    assert not again.changed and again.run == stored
    with pytest.raises(IllegalRunTransition):
        plan(stored, Start(run.now()))


def test_an_orchestrated_run_takes_over_what_its_workflow_reports():
    """Argo's run: Start asks for nothing; a look that finds a stage already ended reports it
    started then ended, and the run's jump from pending to succeeded passes through running."""
    from services.pipelines.domain import OrchestrationSystem
    from services.pipelines.engine import reconcile
    from services.pipelines.integrations.argo import StageObservation

    run = Driver({"stages": [stage("train", "train"), stage("gate", "approve", "train")]})
    run.run = RunState(
        **{**run.run.__dict__, "orchestration_system": OrchestrationSystem.ARGO_WORKFLOWS}
    )
    run.start()
    assert run.commands == [] and run.run.status == RunStatus.PENDING
    seen = {
        "train": StageObservation(
            StageStatus.SUCCEEDED, attempt=2, outputs={"metrics": {"auc": 1.0}}
        ),
        "gate": StageObservation(StageStatus.SKIPPED, message="omitted"),
    }
    result = reconcile(run.run, RunStatus.SUCCEEDED, seen, run.now())
    assert [e.subject.removeprefix("pipelines.") for e in result.events] == [
        "stage.started",
        "stage.succeeded",
        "stage.skipped",
        "run.started",
        "run.succeeded",
    ]
    assert result.run.stages["train"].attempt == 2 and result.commands == ()
    again = reconcile(result.run, RunStatus.SUCCEEDED, seen, run.now())
    assert not again.changed
