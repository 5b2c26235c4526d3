"""The gateway's composition root: `create_app(settings)` wires everything; nothing at import."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from services.gateway import api
from services.gateway.auth import Authenticator, issue_token, problem_reply
from services.gateway.deadline import BodyDeadline
from services.gateway.idempotency import Idempotency, prune_forever
from services.gateway.models import metadata
from services.gateway.openapi import MergedOpenAPI
from services.gateway.proxy import Forwarding, service_proxy
from services.gateway.settings import GatewaySettings
from services.gateway.uploads import StreamedUploads
from shared.auth import CredentialSigner, CredentialVerifier, Role
from shared.db import UnitOfWork, create_engine
from shared.errors import Unauthorized
from shared.http import (
    NO_TELEMETRY,
    BodyLimit,
    CorrelationMiddleware,
    Utf8JsonOnly,
    install_problem_handlers,
)
from shared.migrations import apply_migrations
from shared.outbox import OUTBOX_TABLE
from shared.runtime import ServiceRuntime
from shared.service_table import ServiceSpec, backends, current_table

SERVICE = "gateway"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_app(
    settings: GatewaySettings | None = None, services: Sequence[ServiceSpec] | None = None
) -> FastAPI:
    """The gateway in front of `services` (the table this process runs with, by default)."""
    settings = settings if settings is not None else GatewaySettings()
    runtime = ServiceRuntime(SERVICE, settings, metadata, MIGRATIONS_DIR)
    signer = CredentialSigner(settings.internal_keys, settings.credential_seconds)
    authenticator = Authenticator(
        runtime.sessionmaker, settings.admin_token, signer, settings.token_cache_seconds
    )
    table = backends(services if services is not None else current_table())
    proxies = [
        service_proxy(
            spec,
            settings.urls(spec),
            settings.connections(spec),
            authenticator,
        )
        for spec in table
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app), contextlib.AsyncExitStack() as stack:
            for proxy in proxies:
                await stack.enter_async_context(proxy.connected())
            pruning = asyncio.create_task(
                prune_forever(
                    runtime.connection,
                    ttl_seconds=settings.idempotency_key_seconds,
                    every_seconds=settings.idempotency_prune_seconds,
                ),
                name="gateway-idempotency-pruning",
            )
            try:
                yield
            finally:
                pruning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruning

    app = FastAPI(
        telemetry=NO_TELEMETRY,
        title="Modelplane",
        summary="The public API of the Modelplane MLOps control plane.",
        version="1",
        openapi_url=None,  # served by `docs` below, as the merge with the backends' documents
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    app.state.verifier = CredentialVerifier(settings.internal_keys)
    app.state.proxies = proxies
    docs = MergedOpenAPI(app, proxies, api.SECRET_REPLIES)

    install_problem_handlers(app)
    app.add_exception_handler(Unauthorized, _challenge)
    # The services' paths go to them before FastAPI's routing; the last added runs first.
    app.add_middleware(Forwarding, proxies=proxies)

    def keyed(inner: ASGIApp) -> ASGIApp:
        return Idempotency(
            inner,
            authenticator=authenticator,
            connect=runtime.connection,
            prefix=api.API_PREFIX + "/",
            ttl_seconds=settings.idempotency_key_seconds,
            lock_seconds=settings.idempotency_lock,
            secret_paths=api.SECRET_REPLIES,
        )

    app.add_middleware(keyed)
    app.add_middleware(Utf8JsonOnly)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout_seconds)
    # Uploads skip the whole-body layers above: streamed to their service under their own limit.
    app.add_middleware(
        StreamedUploads,
        table=table,
        proxies=proxies,
        max_bytes=settings.max_upload_bytes,
        idle_seconds=settings.upload_idle_seconds,
        reply_seconds=settings.upload_reply_seconds,
        keyed=keyed,
    )
    # The gateway sets the actor from the token; a caller's actor header is never believed.
    app.add_middleware(CorrelationMiddleware, verifier=None)
    app.include_router(api.health)
    app.include_router(api.router)
    app.include_router(api.internal)
    app.include_router(docs.router(f"{api.API_PREFIX}/openapi.json", f"{api.API_PREFIX}/docs"))
    return app


async def _challenge(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthorized)
    return problem_reply(exc, request.url.path)


async def create_token(settings: GatewaySettings, *, subject: str, role: Role | None) -> str:
    """What `python -m services.gateway create-token` does: migrate, create, return plaintext."""
    await apply_migrations(MIGRATIONS_DIR, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        outbox = metadata.tables[f"{metadata.schema}.{OUTBOX_TABLE}"]
        async with UnitOfWork(engine, SERVICE, outbox) as uow:
            token, _ = await issue_token(uow.session, subject=subject, role=role)
    finally:
        await engine.dispose()
    return token
