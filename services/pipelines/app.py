"""The pipelines service's composition root."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from kubernetes import client as k8s

from services.pipelines import service, store
from services.pipelines.api import router
from services.pipelines.argo_runs import ArgoRuns
from services.pipelines.consumers import CONSUMERS
from services.pipelines.engine import Tick
from services.pipelines.models import metadata
from services.pipelines.settings import PipelinesSettings
from shared.auth import CredentialSigner, CredentialVerifier
from shared.http import (
    NO_TELEMETRY,
    CorrelationMiddleware,
    Utf8JsonOnly,
    install_problem_handlers,
)
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime, install_health_routes

SERVICE = "pipelines"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def sweep_deadlines(runtime: ServiceRuntime, every_seconds: float) -> None:
    """Fail the attempts of stages past their timeout, each run in its own unit of work."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            at = service.now()
            async with runtime.sessionmaker() as session:
                run_ids = await store.runs_past_deadline(session, at)
            for run_id in run_ids:
                async with runtime.uow() as uow:
                    await service.answer(uow, run_id, Tick(at))
        except Exception:
            log.exception("the deadline sweep failed; it runs again in %s s", every_seconds)


def create_app(
    settings: PipelinesSettings, argo_api_client: k8s.ApiClient | None = None
) -> FastAPI:
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS, CONSUMERS)
    argo_runs = ArgoRuns(runtime, settings, argo_api_client)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app):
            tasks = [
                asyncio.create_task(
                    sweep_deadlines(runtime, settings.pipelines_deadline_sweep_seconds),
                    name="pipelines-deadline-sweep",
                )
            ]
            if settings.uses_argo:
                tasks.append(asyncio.create_task(argo_runs.watch(), name="pipelines-argo-watch"))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane pipelines (internal)",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.argo_runs = argo_runs
    app.state.projects = ProjectDirectory(
        settings.gateway_url, CredentialSigner(settings.internal_keys), SERVICE
    )
    app.add_middleware(Utf8JsonOnly)
    # Only the gateway's signed credential says who calls (shared/auth.py).
    app.add_middleware(CorrelationMiddleware, verifier=CredentialVerifier(settings.internal_keys))
    install_problem_handlers(app)
    install_health_routes(app, runtime)
    app.include_router(router)
    return app
