"""The datasets service's composition root."""

from pathlib import Path

from fastapi import FastAPI

from services.datasets.api import router
from services.datasets.consumers import CONSUMERS
from services.datasets.models import metadata
from services.datasets.service import Storage
from services.datasets.settings import DatasetsSettings
from shared.auth import CredentialSigner, CredentialVerifier
from shared.http import NO_TELEMETRY, CorrelationMiddleware, install_problem_handlers
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime, install_health_routes

SERVICE = "datasets"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: DatasetsSettings) -> FastAPI:
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS, CONSUMERS)
    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane datasets (internal)",
        version="1",
        lifespan=runtime.lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.storage = Storage(settings.remote_root, settings.datasets_env.value)
    app.state.projects = ProjectDirectory(
        settings.gateway_url, CredentialSigner(settings.internal_keys), SERVICE
    )
    # Not Utf8JsonOnly: it reads whole bodies, and uploads are streamed to disk (multipart).
    # Only the gateway's signed credential says who calls (shared/auth.py).
    app.add_middleware(CorrelationMiddleware, verifier=CredentialVerifier(settings.internal_keys))
    install_problem_handlers(app)
    install_health_routes(app, runtime)
    app.include_router(router)
    return app
