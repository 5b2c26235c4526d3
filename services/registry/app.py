"""The registry service's composition root."""

from pathlib import Path

from fastapi import FastAPI

from services.registry.access import Access
from services.registry.api import router
from services.registry.consumers import CONSUMERS
from services.registry.models import metadata
from services.registry.service import KnownStages
from services.registry.settings import RegistrySettings
from shared.auth import CredentialSigner, CredentialVerifier
from shared.http import (
    NO_TELEMETRY,
    CorrelationMiddleware,
    Utf8JsonOnly,
    install_problem_handlers,
)
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime, install_health_routes

SERVICE = "registry"
MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: RegistrySettings) -> FastAPI:
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS, CONSUMERS)
    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane registry (internal)",
        version="1",
        lifespan=runtime.lifespan,
        docs_url=None,
        redoc_url=None,
        # The routes themselves, not the router: an included router is matched on every
        # request through layers that cost about as much as the route's own handling.
        routes=router.routes,
    )
    app.state.runtime = runtime
    app.state.known_stages = KnownStages()
    projects = ProjectDirectory(
        settings.gateway_url, CredentialSigner(settings.internal_keys), SERVICE
    )
    app.state.projects = projects
    app.state.access = Access(runtime, projects)
    app.add_middleware(Utf8JsonOnly)
    # Only the gateway's signed credential says who calls (shared/auth.py).
    app.add_middleware(CorrelationMiddleware, verifier=CredentialVerifier(settings.internal_keys))
    install_problem_handlers(app)
    install_health_routes(app, runtime)
    return app
