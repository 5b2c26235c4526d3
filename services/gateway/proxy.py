"""Forwards each service's public paths (its `path_roots` in shared/service_table.py) to it,
with the caller's credential signed by the gateway (shared/auth.py).

The benchmark's hot path, so it is plain ASGI: `Forwarding` hands these paths to their
`ServiceProxy` before FastAPI's routing, the body is read once and passed on as bytes, the
path and query go on exactly as they came, and each service is reached through its
`Upstream` (aiohttp's keep-alive pools, one per replica).
"""

import contextlib
from collections.abc import AsyncIterator, Sequence

import orjson
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.auth import Authenticator, problem_reply
from services.gateway.idempotency import mark_unapplied
from services.gateway.uploads import StreamedBody
from services.gateway.upstream import Header, Upstream, UpstreamError
from shared import context
from shared.auth import CREDENTIAL_HEADER
from shared.context import CORRELATION_HEADER
from shared.errors import NotFound, Problem, ServiceUnavailable
from shared.service_table import ServiceSpec

API_PREFIX = "/api/v1/"
REGISTRY_PREFIX = "/api/v1/registry/"
_PASSED_ON = frozenset({b"content-type", b"accept", b"if-match", b"if-none-match"})
_PASSED_BACK = frozenset({b"content-type", b"etag", b"location", b"content-disposition", b"allow"})
_CREDENTIAL = CREDENTIAL_HEADER.lower().encode()
_CORRELATION = CORRELATION_HEADER.lower().encode()
_PROBE_SECONDS = 2.0


class ServiceProxy:
    """Forwards one service's public paths to it, with the authenticated caller's credential:
    what the caller may do there is the service's to decide."""

    def __init__(
        self,
        service: str,
        origin_urls: Sequence[str],
        authenticator: Authenticator,
        *,
        public_prefix: str,
        public_paths: tuple[str, ...],
        connections: int,
        readiness_path: str = "/readyz",
    ) -> None:
        self.public_paths = public_paths  # the public API paths this backend serves
        self._service = service
        self._origin_urls = tuple(url.rstrip("/") for url in origin_urls)
        self._origins = tuple(url.encode("latin-1") for url in self._origin_urls)
        self._public_prefix = public_prefix
        self._roots = tuple(p.rstrip("/") for p in public_paths)
        self._auth = authenticator
        self._connections = connections
        self._readiness_path = readiness_path
        self._pool: Upstream | None = None

    def serves(self, path: str) -> bool:
        return any(
            path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/")
            for root in self._roots
        )

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """Keep-alive pools for the process's lifetime (the lifespan holds them)."""
        upstream = Upstream(self._origin_urls, connections=self._connections)
        await upstream.start()
        self._pool = upstream
        try:
            yield
        finally:
            self._pool = None
            await upstream.close()

    @property
    def pool(self) -> Upstream:
        if self._pool is None:
            raise ServiceUnavailable("the gateway is not started", service="gateway")
        return self._pool

    async def forward(
        self, scope: Scope, receive: Receive, send: Send, upload: StreamedBody | None = None
    ) -> None:
        """Forward one request; its body read whole, or with `upload` handed on as it arrives."""
        method: str = scope["method"]
        authorization = None
        headers: list[Header] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name in _PASSED_ON:
                headers.append((name, value))
        authenticated = await self._auth.authenticate(authorization)
        context.actor.set(authenticated.caller.subject)
        path = scope["path"]
        path = path[len(self._public_prefix) :] if path.startswith(self._public_prefix) else ""
        if ".." in path.split("/"):
            raise NotFound(f"no such path: {self._public_prefix}{path}")
        body: bytes | AsyncIterator[bytes]
        if upload is None:
            body, timeout = await _read_body(receive), None
        else:
            body, timeout = upload.chunks(), upload.reply_seconds
            headers.extend(upload.headers)

        headers.append((_CREDENTIAL, authenticated.credential.encode("latin-1")))
        headers.append((_CORRELATION, (context.correlation_id.get() or "").encode("latin-1")))
        # The service serves the public path itself: it goes on as the caller wrote it.
        target = scope.get("raw_path") or scope["path"].encode()
        if query := scope["query_string"]:
            target += b"?" + query
        try:
            reply = await self.pool.request(method, target, headers, body, timeout=timeout)
        except UpstreamError as exc:
            if not exc.reached:
                mark_unapplied(scope)
            if upload is not None and upload.problem is not None:
                raise upload.problem from exc  # the caller's body broke the exchange off
            raise ServiceUnavailable(
                f"the {self._service} did not answer: {exc}", service=self._service
            ) from exc

        passed_back = [(n, v) for n, v in reply.headers if n in _PASSED_BACK]
        for i, (name, value) in enumerate(passed_back):
            if name == b"location":
                # The service's own address is internal; its paths are the gateway's paths.
                for origin in self._origins:
                    value = value.removeprefix(origin)
                passed_back[i] = (name, value)
        if reply.body is None:
            # A reply of unknown length (a log that follows a running job) or a large one (a
            # dataset's files) goes on as it arrives, with its length when it has one.
            if (length := reply.header(b"content-length")) is not None:
                passed_back.append((b"content-length", length))
            streamed = StreamingResponse(
                reply.chunks(),
                status_code=reply.status,
                headers={n.decode("latin-1"): v.decode("latin-1") for n, v in passed_back},
            )
            await streamed(scope, receive, send)
            return
        if method != "HEAD":
            passed_back.append((b"content-length", str(len(reply.body)).encode()))
        elif (length := reply.header(b"content-length")) is not None:
            passed_back.append((b"content-length", length))
        await send({"type": "http.response.start", "status": reply.status, "headers": passed_back})
        await send({"type": "http.response.body", "body": reply.body})

    @property
    def name(self) -> str:
        return self._service

    async def ready(self) -> bool:
        """Whether a replica of the service is ready (the others are the pool's to avoid)."""
        for replica in range(len(self._origin_urls)):
            try:
                reply = await self.pool.request(
                    "GET", self._readiness_path, timeout=_PROBE_SECONDS, replica=replica
                )
                await reply.read()
            except UpstreamError:
                continue
            if reply.status == 200:
                return True
        return False

    async def openapi(self) -> dict | None:
        """The service's OpenAPI document, or None while it does not answer."""
        try:
            reply = await self.pool.request("GET", "/openapi.json", timeout=_PROBE_SECONDS)
            document = orjson.loads(await reply.read())
        except (UpstreamError, orjson.JSONDecodeError):
            return None
        return document if reply.status == 200 and isinstance(document, dict) else None


class Forwarding:
    """ASGI middleware: a request for a path a proxy serves goes to it, past FastAPI's router
    and its middleware (each layer costs every forwarded request); anything else goes on.
    Its errors are problem+json like the rest of the API's."""

    def __init__(self, app: ASGIApp, proxies: Sequence[ServiceProxy]) -> None:
        self.app = app
        self.proxies = tuple(proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            for proxy in self.proxies:
                if proxy.serves(path):
                    try:
                        await proxy.forward(scope, receive, send)
                    except Problem as problem:
                        await problem_reply(problem, path)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def service_proxy(
    spec: ServiceSpec, urls: Sequence[str], connections: int, authenticator: Authenticator
) -> ServiceProxy:
    """The proxy of one service of the table. What a caller may do there is the service's to
    decide: the gateway only authenticates."""
    prefix = REGISTRY_PREFIX if spec.name == "registry" else API_PREFIX
    return ServiceProxy(
        spec.name,
        urls,
        authenticator,
        public_prefix=prefix,
        public_paths=spec.path_roots,
        connections=connections,
        readiness_path=spec.readiness_path,
    )


async def _read_body(receive: Receive) -> bytes:
    message: Message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)
