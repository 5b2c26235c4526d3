"""Runs validated jobs and follows them to their end.

Starting a job creates its MLflow run, submits it to the executor and records JobStarted; a
background watcher asks the executor about every running job and, when one ends, reads its run
back from MLflow and records how it ended. All of it is driven from the database (jobs in
`validated` or `running`), so a restarted service picks up where the last one stopped.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from services.jobs import store
from services.jobs.domain import (
    TERMINAL_RUN_STATUS,
    JobStatus,
    RunStatus,
    check_cancellable,
    gpu_count,
    gpu_node_selector,
)
from services.jobs.events import job_fields, run_updated
from services.jobs.integrations.executor import ExecutionState, ExecutionStatus, Executor, JobSpec
from services.jobs.integrations.mlflow_tracking import MlflowTracking
from services.jobs.models import TrainingJob
from services.jobs.settings import JobsSettings
from shared import context
from shared.db import UnitOfWork, apply_changes
from shared.events.jobs import JobCancelled, JobFailed, JobStarted, JobSucceeded, RegisterModel
from shared.integrations import Concern, TrainingBackend

log = logging.getLogger(__name__)

TRACKING_SYSTEM = "mlflow"
JOB_TAG = "modelplane.job_id"  # the MLflow tag naming a run's job, to find it again
# A released start claim: stale for any lease, and unlike None it says a start was tried.
_RELEASED = datetime(1970, 1, 1, tzinfo=UTC)
# What an env's IntegrationConfig may choose for its Kubernetes jobs; the cluster and its
# credentials are the service's own settings (a job's handle then finds it on any config).
KUBERNETES_OPTIONS = ("namespace", "gpu_node_label")
_JOB_STATUS = {
    ExecutionState.SUCCEEDED: JobStatus.SUCCEEDED,
    ExecutionState.FAILED: JobStatus.FAILED,
    ExecutionState.KILLED: JobStatus.KILLED,
}


def build_executor(settings: JobsSettings, name: str, options: Mapping[str, Any]) -> Executor:
    """The executor `name`; an env's IntegrationConfig `options` override the service's settings."""
    if name == TrainingBackend.KUBERNETES:
        # Imported only when used: the kubernetes client is heavy, and local needs none of it.
        from services.jobs.integrations.kubernetes import (
            KubernetesConfig,
            KubernetesExecutor,
        )

        overrides = {key: options[key] for key in KUBERNETES_OPTIONS if key in options}
        return KubernetesExecutor(
            KubernetesConfig(
                **{
                    "namespace": settings.kubernetes_namespace,
                    "host": settings.kubernetes_host,
                    "token": settings.kubernetes_token,
                    "verify_ssl": settings.kubernetes_verify_ssl,
                    **overrides,
                }
            )
        )
    if name == TrainingBackend.LOCAL:
        from services.jobs.integrations.local import LocalExecutor

        return LocalExecutor(
            settings.jobs_state_dir / "runs",
            grace_seconds=settings.jobs_cancel_grace_seconds,
            run_as=settings.local_jobs_user(),
        )
    raise ValueError(f"no training execution backend named {name!r}")


class JobSupervisor:
    def __init__(
        self,
        settings: JobsSettings,
        new_uow: Callable[[], UnitOfWork],
        tracking: MlflowTracking | None = None,
        executors: dict[str, Executor] | None = None,
    ) -> None:
        self.settings = settings
        self._new_uow = new_uow
        self.tracking = tracking or MlflowTracking(
            settings.tracking_uri(), settings.artifact_root()
        )
        self._executors: dict[str, Executor] = dict(executors or {})
        self._task: asyncio.Task | None = None

    def executor(self, name: str, options: Mapping[str, Any] | None = None) -> Executor:
        """One executor per backend and options. A job's handle is enough for any executor of
        its backend to follow it (a Kubernetes handle names its namespace), so a job started
        under options since changed is followed by `executor(job.executor)`."""
        key = name if not options else f"{name} {json.dumps(options, sort_keys=True)}"
        if key not in self._executors:
            self._executors[key] = build_executor(self.settings, name, options or {})
        return self._executors[key]

    async def _executor_for(self, uow: UnitOfWork, env: str) -> tuple[str, dict[str, Any]]:
        """The env's executor: its IntegrationConfig, else the service's default for it."""
        config = await store.get_integration_config(uow.session, env, Concern.TRAINING_EXECUTION)
        if config is None:
            return self.settings.default_executor(env).value, {}
        return config.backend, config.settings

    async def start(self, job_id: UUID) -> None:
        """Start a validated job; a job another caller is starting, or started, is left alone.

        No transaction is open across a call to MLflow or the executor (claim, call, record); the
        watcher takes up a crashed start once its claim is stale, and finds what it made."""
        claim = await self._claim_start(job_id)
        if claim is None:
            return
        job, executor_name, options, spec, first_attempt = claim
        context.actor.set(job.created_by)  # the watcher acts for whoever submitted the job
        experiment_name = f"{job.project_id}/{job.name}"
        run_name = f"{job.name}-{str(job.id)[:8]}"
        try:
            run_id = await self.tracking.find_or_create_run(
                experiment_name,
                run_name,
                params=job.parameters,
                tags={JOB_TAG: str(job.id), "modelplane.project_id": str(job.project_id)},
                identified_by=JOB_TAG,
                first_attempt=first_attempt,
            )
        except Exception:
            await self._release_start(job_id)  # the next round tries again, not a lease later
            raise
        executor = self.executor(executor_name, options)
        handle = failure = None
        try:
            handle = await executor.submit(replace(spec, env=self.tracking.env_for_run(run_id)))
        except Exception as exc:
            log.exception("job %s could not be started", job.id)
            failure = f"the executor did not start it: {exc}"
            await self.tracking.finish(run_id, "FAILED")
        async with self._new_uow() as uow:
            locked = await store.lock_job(uow.session, job_id)
            started = locked is not None and locked.status == JobStatus.VALIDATED
            if started and locked is not None and failure is not None:
                await self._insert_run(
                    uow, locked, run_id, experiment_name, run_name, RunStatus.FAILED
                )
                await self._end(uow, locked, JobStatus.FAILED, run_id, None, failure)
            elif started and locked is not None:
                await self._insert_run(
                    uow, locked, run_id, experiment_name, run_name, RunStatus.RUNNING
                )
                await apply_changes(
                    uow.session,
                    locked,
                    {
                        "status": JobStatus.RUNNING.value,
                        "executor": executor_name,
                        "handle": handle,
                        "started_at": datetime.now(UTC),
                        "start_claimed_at": None,
                    },
                )
                uow.record(
                    JobStarted(**job_fields(locked), executor=executor_name, run_id=run_id),
                    locked.id,
                )
        if not started and handle is not None and locked is not None and locked.handle is None:
            # Cancelled while it was being started: stop what was started for it. (A handle
            # means another starter, taking up a claim it thought stale, recorded this run.)
            await executor.cancel(handle)
            await self.tracking.finish(run_id, "KILLED")

    async def _claim_start(
        self, job_id: UUID
    ) -> tuple[TrainingJob, str, dict[str, Any], JobSpec, bool] | None:
        """Mark a validated job as being started by this caller, with what starting it takes
        and whether no start was tried before; None when it is not validated, or another
        caller's claim on it is still fresh."""
        async with self._new_uow() as uow:
            job = await store.lock_job(uow.session, job_id, skip_locked=True)
            if job is None or job.status != JobStatus.VALIDATED:
                return None
            now = datetime.now(UTC)
            lease = timedelta(seconds=self.settings.jobs_start_claim_seconds)
            if job.start_claimed_at is not None and now - job.start_claimed_at < lease:
                return None
            executor_name, options = await self._executor_for(uow, job.env)
            spec = await self._spec(uow, job, {})
            first_attempt = job.start_claimed_at is None
            await apply_changes(uow.session, job, {"start_claimed_at": now})
            return job, executor_name, options, spec, first_attempt

    async def _release_start(self, job_id: UUID) -> None:
        async with self._new_uow() as uow:
            job = await store.lock_job(uow.session, job_id)
            if job is not None and job.status == JobStatus.VALIDATED:
                # Stale at once, yet not None: the next start looks for a run this one made.
                await apply_changes(uow.session, job, {"start_claimed_at": _RELEASED})

    async def settle(self, job_id: UUID) -> JobStatus | None:
        """Apply a running job's end if its executor says it has ended; its status after."""
        async with self._new_uow() as uow:
            job = await store.get_job(uow.session, job_id)
        if job is None or job.status != JobStatus.RUNNING:
            return None if job is None else JobStatus(job.status)
        context.actor.set(job.created_by)
        executor_name, handle = _execution(job)
        status = await self.executor(executor_name).status(handle)
        if not status.finished:
            return JobStatus.RUNNING
        return await self._finish(job_id, status)

    async def cancel(self, job_id: UUID) -> None:
        async with self._new_uow() as uow:
            job = await store.lock_job(uow.session, job_id)
            if job is None:
                return
            check_cancellable(JobStatus(job.status))
            if job.status != JobStatus.RUNNING:
                # Not started (or being started: its starter stops what it started): nothing
                # runs yet.
                await self._end(uow, job, JobStatus.KILLED, None, None, "cancelled")
                return
        executor_name, handle = _execution(job)
        executor = self.executor(executor_name)
        await executor.cancel(handle)
        status = await executor.status(handle)
        if status.state != ExecutionState.KILLED and not status.finished:
            status = ExecutionStatus(ExecutionState.KILLED, message="cancelled")
        await self._finish(job_id, status)

    def logs(self, job: TrainingJob) -> AsyncIterator[str]:
        executor_name, handle = _execution(job)
        return self.executor(executor_name).logs(handle)

    async def watch_once(self) -> None:
        async with self._new_uow() as uow:
            validated = await store.job_ids_in(uow.session, JobStatus.VALIDATED)
            running = await store.job_ids_in(uow.session, JobStatus.RUNNING)
        # Side by side, a few at a time: one job's slow MLflow call or executor holds up no
        # other (250 jobs ending together were settled one after another for minutes).
        limit = asyncio.Semaphore(self.settings.jobs_watch_concurrency)

        async def step(action: Callable, job_id: UUID) -> None:
            async with limit:
                await self._guarded(action, job_id)

        await asyncio.gather(*(step(self.start, job_id) for job_id in validated))
        await asyncio.gather(*(step(self.settle, job_id) for job_id in running))

    async def watch(self) -> None:
        while True:
            try:
                await self.watch_once()
            except Exception:
                log.exception("jobs watcher: a round failed; trying again")
            await asyncio.sleep(self.settings.jobs_watch_seconds)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        self._task = asyncio.create_task(self.watch(), name="jobs-watcher")
        try:
            yield
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def watcher_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _guarded(self, step: Callable, job_id: UUID) -> None:
        try:
            await step(job_id)
        except Exception:
            log.exception("jobs watcher: job %s failed to advance; will retry", job_id)

    async def _spec(self, uow: UnitOfWork, job: TrainingJob, env: dict[str, str]) -> JobSpec:
        resources = job.resources or {}
        gpu_type = resources.get("gpu_type")
        node_key = node_value = None
        if job.use_gpu and gpu_type:
            option = await store.get_gpu_type(uow.session, job.env, gpu_type)
            node_key, node_value = gpu_node_selector(option.node_label if option else None)
        return JobSpec(
            job_id=job.id,
            name=job.name,
            command=list(job.command),
            working_dir=job.working_dir,
            image=job.image,
            python_env=job.python_env,
            env=env,
            parameters=job.parameters,
            use_gpu=job.use_gpu,
            gpus=gpu_count(job.use_gpu, resources.get("gpus")),
            gpu_type=node_value or gpu_type,
            gpu_node_label=node_key,
            cpu=resources.get("cpu"),
            memory=resources.get("memory"),
        )

    async def _insert_run(
        self,
        uow: UnitOfWork,
        job: TrainingJob,
        run_id: str,
        experiment_name: str,
        run_name: str,
        status: RunStatus,
    ) -> None:
        now = datetime.now(UTC)
        run = await store.insert_run(
            uow.session,
            {
                "id": uuid4(),
                "job_id": job.id,
                "tracking_system": TRACKING_SYSTEM,
                "tracking_run_id": run_id,
                "experiment_name": experiment_name,
                "run_name": run_name,
                "parameters": job.parameters,
                "metrics": {},
                "artifact_uris": [],
                "artifacts": [],
                "status": status.value,
                "start_time": now,
                "end_time": now if status != RunStatus.RUNNING else None,
            },
        )
        uow.record(run_updated(job, run), run.id)

    async def _finish(self, job_id: UUID, status: ExecutionStatus) -> JobStatus:
        """Read the run back from MLflow and end it there, then record how the job ended.

        MLflow first, outside any transaction: a crash in between leaves the job running, and
        the watcher's next round ends the run again (harmless) and records it."""
        outcome = _JOB_STATUS[status.state]
        async with self._new_uow() as uow:
            run = await store.run_of_job(uow.session, job_id)
        snapshot = None
        if run is not None:
            snapshot = await self.tracking.read_run(run.tracking_run_id)
            await self.tracking.finish(run.tracking_run_id, TERMINAL_RUN_STATUS[outcome][1])
        async with self._new_uow() as uow:
            job = await store.lock_job(uow.session, job_id)
            if job is None or job.status != JobStatus.RUNNING:
                return JobStatus(job.status) if job is not None else outcome  # another ended it
            results = None
            if run is not None and snapshot is not None:
                run = await store.update_run(
                    uow.session,
                    run.id,
                    {
                        "metrics": snapshot.metrics,
                        "artifact_uris": [snapshot.artifact_uri] if snapshot.artifact_uri else [],
                        "artifacts": snapshot.artifacts,
                        "parameters": {**job.parameters, **snapshot.params},
                        "status": TERMINAL_RUN_STATUS[outcome][0].value,
                        "end_time": datetime.now(UTC),
                    },
                )
                uow.record(run_updated(job, run), run.id)
                results = (snapshot.metrics, snapshot.artifact_uri)
            await apply_changes(uow.session, job, {"exit_code": status.exit_code})
            await self._end(
                uow, job, outcome, run.tracking_run_id if run else None, results, status.message
            )
        return outcome

    async def _end(
        self,
        uow: UnitOfWork,
        job: TrainingJob,
        outcome: JobStatus,
        run_id: str | None,
        results: tuple[dict[str, float], str | None] | None,
        message: str | None,
    ) -> None:
        await apply_changes(
            uow.session,
            job,
            {
                "status": outcome.value,
                "message": message,
                "finished_at": datetime.now(UTC),
            },
        )
        common = {**job_fields(job), "run_id": run_id}
        if outcome == JobStatus.SUCCEEDED:
            metrics, artifact_uri = results or ({}, None)
            register = RegisterModel(**job.register_model) if job.register_model else None
            uow.record(
                JobSucceeded(
                    **common, metrics=metrics, artifact_uri=artifact_uri, register_model=register
                ),
                job.id,
            )
        elif outcome == JobStatus.FAILED:
            uow.record(JobFailed(**common, exit_code=job.exit_code, message=message), job.id)
        else:
            uow.record(JobCancelled(**common), job.id)
        log.info("job %s %s", job.id, outcome)


def _execution(job: TrainingJob) -> tuple[str, str]:
    """The executor and handle of a job that has started."""
    if job.executor is None or job.handle is None:
        raise RuntimeError(f"job {job.id} has not started: no executor runs it")
    return job.executor, job.handle
