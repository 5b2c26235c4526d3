"""The jobs service's composition root."""

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from services.jobs.api import router
from services.jobs.consumers import consumers
from services.jobs.models import metadata
from services.jobs.settings import JobsSettings
from services.jobs.supervisor import JobSupervisor
from shared.auth import CredentialSigner, CredentialVerifier
from shared.http import (
    NO_TELEMETRY,
    CorrelationMiddleware,
    Utf8JsonOnly,
    install_problem_handlers,
)
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime, install_health_routes

SERVICE = "jobs"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: JobsSettings, supervisor: JobSupervisor | None = None) -> FastAPI:
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS, consumers(lambda: watcher))
    watcher = supervisor or JobSupervisor(settings, runtime.uow)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.jobs_state_dir.mkdir(parents=True, exist_ok=True)
        # The watcher starts after migrations and resumes the jobs the database says are running.
        async with runtime.lifespan(app), watcher.watching():
            yield

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane jobs (internal)",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.supervisor = watcher
    signer = CredentialSigner(settings.internal_keys)
    app.state.projects = ProjectDirectory(settings.gateway_url, signer, SERVICE)
    app.add_middleware(Utf8JsonOnly)
    # Only the gateway's signed credential says who calls (shared/auth.py).
    app.add_middleware(CorrelationMiddleware, verifier=CredentialVerifier(settings.internal_keys))
    install_problem_handlers(app)
    install_health_routes(app, runtime)
    app.include_router(router)
    return app
