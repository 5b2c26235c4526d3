"""The facts the jobs service's events take from its rows, written once for every use case."""

from typing import Any

from services.jobs.models import ExperimentRun, TrainingJob
from shared.events.jobs import ExperimentRunUpdated


def job_fields(job: TrainingJob) -> dict[str, Any]:
    """What every job event carries: the job, the pipeline stage attempt it came from, and the
    dataset versions it uses."""
    return {
        "job_id": job.id,
        "name": job.name,
        "project_id": job.project_id,
        "pipeline_run_id": job.pipeline_run_id,
        "pipeline_stage": job.pipeline_stage,
        "pipeline_attempt": job.pipeline_attempt,
        "dataset_version_ids": job.dataset_version_ids,
    }


def run_updated(job: TrainingJob, run: ExperimentRun) -> ExperimentRunUpdated:
    return ExperimentRunUpdated(
        experiment_run_id=run.id,
        job_id=job.id,
        project_id=job.project_id,
        tracking_system=run.tracking_system,
        tracking_run_id=run.tracking_run_id,
        experiment_name=run.experiment_name,
        run_name=run.run_name,
        status=run.status,
        parameters=run.parameters,
        metrics=run.metrics,
        artifact_uris=run.artifact_uris,
        artifacts=run.artifacts,
        start_time=run.start_time,
        end_time=run.end_time,
    )
