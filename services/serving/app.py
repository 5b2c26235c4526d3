"""The serving service's composition root."""

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from fastapi import FastAPI

from services.serving.api import router
from services.serving.consumers import CONSUMERS
from services.serving.integrations.backend import ServingBackend
from services.serving.integrations.kserve import KServeBackend
from services.serving.integrations.ray_serve import RayServeBackend
from services.serving.models import metadata
from services.serving.predictions import Routes
from services.serving.reconciler import Reconciler
from services.serving.settings import ServingSettings
from shared.auth import CredentialSigner, CredentialVerifier
from shared.http import (
    NO_TELEMETRY,
    CorrelationMiddleware,
    Utf8JsonOnly,
    install_problem_handlers,
)
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime, install_health_routes

SERVICE = "serving"
MIGRATIONS = Path(__file__).parent / "migrations"


def build_backends(settings: ServingSettings) -> dict[str, ServingBackend]:
    """Ray Serve always; KServe when a Kubernetes API server is named or this runs in a cluster."""
    backends: dict[str, ServingBackend] = {"ray_serve": RayServeBackend(settings.ray_serve())}
    if settings.kubernetes_host or os.environ.get("KUBERNETES_SERVICE_HOST"):
        backends["kserve"] = KServeBackend(settings.kserve())
    return backends


def create_app(
    settings: ServingSettings, backends: Mapping[str, ServingBackend] | None = None
) -> FastAPI:
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS, CONSUMERS)
    backends = dict(backends) if backends is not None else build_backends(settings)
    reconciler = Reconciler(
        runtime.uow,
        backends,
        policy=settings.health_policy(),
        interval=settings.serving_watch_seconds,
        max_backoff=settings.serving_watch_max_backoff_seconds,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The watcher starts after migrations and resumes every deployment not yet retired.
        async with runtime.lifespan(app), reconciler.running():
            try:
                yield
            finally:
                for backend in backends.values():
                    await backend.close()

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane serving (internal)",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.backends = backends
    app.state.reconciler = reconciler
    app.state.routes = Routes(runtime.sessionmaker, ttl=settings.serving_route_seconds)
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
