"""Forwards `/api/v1/registry/{path}` to the registry service, and `/api/v1/jobs...` and
`/api/v1/gpu-types...` to the jobs service, with the caller as the actor.

The benchmark's hot path: a plain Starlette endpoint (no FastAPI parameter parsing), the body
read once and passed on as bytes, one pooled keep-alive aiohttp session for every call (httpx
spent more time scanning its pool than forwarding; see bench/README.md).
"""

import contextlib
from collections.abc import AsyncIterator, Callable
from uuid import UUID

import aiohttp
import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from services.gateway import store
from services.gateway.auth import Authenticator
from services.gateway.domain import (
    Action,
    is_job_submission,
    is_model_registration,
    is_transition,
    jobs_action,
    registry_action,
)
from shared import context
from shared.context import ACTOR_HEADER, CORRELATION_HEADER
from shared.errors import InvalidInput, NotFound, ServiceUnavailable

REGISTRY_PREFIX = "/api/v1/registry/"
JOBS_PREFIX = "/api/v1/"
JOBS_ROOTS = ("/api/v1/jobs", "/api/v1/gpu-types")
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_PASSED_ON = ("content-type", "accept", "if-match", "if-none-match")
_PASSED_BACK = ("content-type", "etag", "location")
_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


class ServiceProxy:
    """Forwards one service's public paths to it, after authentication and the role check."""

    def __init__(
        self,
        service: str,
        origin_url: str,
        authenticator: Authenticator,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        public_prefix: str,
        public_paths: tuple[str, ...],
        action: Callable[[str, str, bytes], Action],
        needs_project: Callable[[str, str], bool],
        connections: int,
    ) -> None:
        self.public_paths = public_paths  # the public API paths this backend serves
        self._service = service
        self._origin = origin_url.rstrip("/")
        self._public_prefix = public_prefix
        self._prefix = self._origin + public_prefix
        self._action = action
        self._needs_project = needs_project
        self._auth = authenticator
        self._sessionmaker = sessionmaker
        self._connections = connections
        # Projects are never deleted, so one seen to exist needs no second look.
        self._known_projects: set[UUID] = set()
        self._client: aiohttp.ClientSession | None = None

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """One keep-alive pool for the process's lifetime (the lifespan holds it)."""
        self._client = aiohttp.ClientSession(
            # Idle connections retire before the services' 5 s keep-alive closes them under us.
            connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=2.0),
            timeout=aiohttp.ClientTimeout(total=30.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        try:
            yield
        finally:
            await self._client.close()
            self._client = None

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise ServiceUnavailable("the gateway is not started", service="gateway")
        return self._client

    async def forward(self, request: Request) -> Response:
        principal = await self._auth.authenticate(request.headers.get("authorization"))
        context.actor.set(principal.subject)
        method = request.method
        path = request.url.path.removeprefix(self._public_prefix)
        if ".." in path.split("/"):
            raise NotFound(f"no such path: {self._public_prefix}{path}")
        body = await request.body()
        principal.require(self._action(method, path, body))
        if self._needs_project(method, path):
            await self._require_project(body)

        headers = {
            ACTOR_HEADER: principal.subject,
            CORRELATION_HEADER: context.correlation_id.get() or "",
        }
        for name in _PASSED_ON:
            if value := request.headers.get(name):
                headers[name] = value
        url = self._prefix + path
        if query := request.scope["query_string"]:
            url += "?" + query.decode("latin-1")
        try:
            reply = await self.client.request(method, url, data=body, headers=headers)
            # A reply of unknown length (a log that follows a running job) is passed on as it
            # is written; any other is read whole, which frees its connection at once.
            content = None if reply.content_length is None else await reply.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(
                f"the {self._service} did not answer: {type(exc).__name__}", service=self._service
            ) from exc

        passed_back = {}
        for name in _PASSED_BACK:
            if value := reply.headers.get(name):
                passed_back[name] = value
        if location := passed_back.get("location"):
            # The service's own address is internal; its paths are the gateway's paths.
            passed_back["location"] = location.removeprefix(self._origin)
        if content is None:
            return StreamingResponse(_chunks(reply), status_code=reply.status, headers=passed_back)
        return Response(content, status_code=reply.status, headers=passed_back)

    async def _require_project(self, body: bytes) -> None:
        raw = _json_field(body, "project_id")
        try:
            project_id = UUID(raw) if isinstance(raw, str) else None
        except ValueError:
            project_id = None
        if project_id is None:
            raise InvalidInput("body.project_id must be the UUID of an existing project")
        if project_id in self._known_projects:
            return
        async with self._sessionmaker() as session:
            exists = await store.project_exists(session, project_id)
        if not exists:
            raise InvalidInput(
                f"there is no project {project_id}; create it with POST /api/v1/projects",
                kind="unknown-project",
                project_id=str(project_id),
            )
        self._known_projects.add(project_id)

    async def ready(self) -> bool:
        try:
            async with self.client.get(self._origin + "/readyz", timeout=_PROBE_TIMEOUT) as reply:
                return reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def openapi(self) -> dict | None:
        """The service's OpenAPI document, or None while it does not answer."""
        try:
            async with self.client.get(
                self._origin + "/openapi.json", timeout=_PROBE_TIMEOUT, raise_for_status=True
            ) as reply:
                document = orjson.loads(await reply.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None
        return document if isinstance(document, dict) else None


def registry_proxy(
    url: str,
    authenticator: Authenticator,
    sessionmaker: async_sessionmaker[AsyncSession],
    connections: int,
) -> ServiceProxy:
    def action(method: str, path: str, body: bytes) -> Action:
        stage = _json_field(body, "stage") if is_transition(method, path) else None
        return registry_action(method, path, stage)

    return ServiceProxy(
        "registry", url, authenticator, sessionmaker,
        public_prefix=REGISTRY_PREFIX, public_paths=(REGISTRY_PREFIX.rstrip("/"),),
        action=action, needs_project=is_model_registration, connections=connections,
    )


def jobs_proxy(
    url: str,
    authenticator: Authenticator,
    sessionmaker: async_sessionmaker[AsyncSession],
    connections: int,
) -> ServiceProxy:
    return ServiceProxy(
        "jobs", url, authenticator, sessionmaker,
        public_prefix=JOBS_PREFIX, public_paths=JOBS_ROOTS,
        action=lambda method, path, _: jobs_action(method, path),
        needs_project=is_job_submission, connections=connections,
    )


async def _chunks(reply: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in reply.content.iter_any():
            yield chunk
    finally:
        reply.release()


def _json_field(body: bytes, name: str) -> object:
    """One top-level field of a JSON object body; None when absent or not JSON."""
    if not body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return document.get(name) if isinstance(document, dict) else None
