"""Runs on Argo Workflows: their workflows submitted, read back every few seconds into the
runs' rows (with the events of each change), terminated on cancel, resumed on approval.

The Kubernetes client blocks, so each call runs in a thread. What is stored is the source of
truth: a run whose workflow is missing (the process died between the commit and the submit)
is submitted on the next look, and submitting twice finds the first workflow.
"""

import asyncio
import logging
from uuid import UUID

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from services.pipelines import service, store
from services.pipelines.domain import OrchestrationSystem, RunStatus, StageKind, StageStatus
from services.pipelines.engine import StageNotAwaitingApproval, StageNotFound
from services.pipelines.errors import RunNotFound
from services.pipelines.integrations.argo import (
    ArgoWorkflows,
    build_api_client,
    observe,
    render_workflow,
)
from services.pipelines.settings import PipelinesSettings
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)
ARGO = OrchestrationSystem.ARGO_WORKFLOWS


class ArgoRuns:
    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: PipelinesSettings,
        api_client: k8s.ApiClient | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = settings.argo_config()
        self.poll_seconds = settings.pipelines_argo_poll_seconds
        self._api_client = api_client
        self._settings = settings
        self._workflows: ArgoWorkflows | None = None

    @property
    def workflows(self) -> ArgoWorkflows:
        """Built when first needed: a platform with no Argo env never reads a kubeconfig."""
        if self._workflows is None:
            client = self._api_client or build_api_client(
                self._settings.kubernetes_host,
                self._settings.kubernetes_token,
                self._settings.kubernetes_verify_ssl,
            )
            self._workflows = ArgoWorkflows(client, self.config)
        return self._workflows

    async def submit(self, run_id: UUID) -> None:
        async with self.runtime.sessionmaker() as session:
            row = await store.get_run(session, run_id)
            if row is None:
                return
            run = store.run_state(row, await store.run_stages(session, run_id))
        manifest = render_workflow(
            run.definition,
            name=row.workflow_id,
            run_id=run.id,
            pipeline_id=run.pipeline_id,
            parameters=run.parameters,
            config=self.config,
        )
        await asyncio.to_thread(self.workflows.submit, manifest)

    async def sync(self, run_id: UUID, workflow_id: str) -> None:
        """Read the run's workflow back into its rows; submit it if it is not there."""
        try:
            workflow = await asyncio.to_thread(self.workflows.get, workflow_id)
        except ApiException as error:
            if error.status != 404:
                raise
            await self.submit(run_id)
            return
        async with self.runtime.sessionmaker() as session:
            row = await store.get_run(session, run_id)
            if row is None:
                return
            definition = store.run_state(row, []).definition
        async with self.runtime.uow() as uow:
            await service.sync_run(uow, run_id, observe(workflow, definition))

    async def sync_all(self) -> None:
        async with self.runtime.sessionmaker() as session:
            runs = await store.active_runs(session, str(ARGO))
        for run_id, workflow_id in runs:
            try:
                await self.sync(run_id, workflow_id)
            except Exception:
                log.exception("reading the workflow of run %s failed; tried again later", run_id)

    async def watch(self) -> None:
        while True:
            try:
                await self.sync_all()
            except Exception:
                log.exception("reading Argo runs failed; tried again in %s s", self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)

    async def cancel(self, pipeline_id: UUID, run_id: UUID, actor: str) -> None:
        """Terminate the workflow, then record the run cancelled; should the record fail, the
        next look finds the workflow stopped and records it then."""
        row = await self._row(pipeline_id, run_id)
        if not RunStatus(row.status).finished:
            await asyncio.to_thread(self.workflows.terminate, row.workflow_id)
        async with self.runtime.uow() as uow:
            await service.cancel_run(uow, pipeline_id, run_id, actor=actor)

    async def approve(
        self,
        pipeline_id: UUID,
        run_id: UUID,
        stage: str,
        *,
        actor: str,
        approved: bool,
        comment: str | None,
    ) -> None:
        row = await self._row(pipeline_id, run_id)
        async with self.runtime.sessionmaker() as session:
            definition = store.run_state(row, await store.run_stages(session, run_id)).definition
        if stage not in definition.names():
            raise StageNotFound(f"the pipeline has no stage '{stage}'")
        workflow = await asyncio.to_thread(self.workflows.get, row.workflow_id)
        seen = observe(workflow, definition).stages[stage]
        if (
            definition.stage(stage).kind != StageKind.APPROVE
            or seen.status != StageStatus.RUNNING
            or seen.node_id is None
        ):
            raise StageNotAwaitingApproval(
                f"stage {stage} is {seen.status}, not an approve stage waiting for a person"
            )
        await asyncio.to_thread(
            self.workflows.resume,
            row.workflow_id,
            seen.node_id,
            actor,
            approved=approved,
            comment=comment,
        )
        await self.sync(run_id, row.workflow_id)

    async def _row(self, pipeline_id: UUID, run_id: UUID):
        async with self.runtime.sessionmaker() as session:
            row = await store.get_run(session, run_id)
        if row is None or row.pipeline_id != pipeline_id:
            raise RunNotFound(f"pipeline {pipeline_id} has no run {run_id}")
        return row
