"""The gateway's hop to one service: aiohttp's keep-alive pool to each of its replicas, taken
in turn, with a failed exchange retried once where that is safe.

Safe: a method HTTP calls idempotent (aiohttp retries those on a kept-alive connection found
closed, RFC 9112 section 9.3.1), and any request that never wholly left: aiohttp raises
`ClientConnectionResetError` only when it writes to a connection already closing. A write that
did leave is not repeated: the service may have applied it.
"""

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

import aiohttp
from yarl import URL

Header = tuple[bytes, bytes]
# Idle connections retire before the services' own keep-alive timeout (uvicorn's: 5 s) could
# close one under a request just sent on it.
IDLE_SECONDS = 2.0
# How long a service gets to answer a request (a streamed reply's head only).
REPLY_SECONDS = 30.0
# A reply longer than this is streamed on rather than read whole into the gateway's memory.
STREAMED_PAST_BYTES = 1024 * 1024


class UpstreamError(Exception):
    """The service could not be reached, broke the exchange off, or did not answer in time.
    `reached`: whether the request may have got to the service (False: it surely did not)."""

    def __init__(self, message: str, *, reached: bool = True) -> None:
        super().__init__(message)
        self.reached = reached


class Reply:
    """A service's response: status, headers (names lower-case), and the body: `body` when the
    service gave its length and it is small, else `chunks()` as they arrive."""

    __slots__ = ("_response", "body", "headers", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, body: bytes | None, headers: list[Header]
    ) -> None:
        self._response = response
        self.status = response.status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; leaving early gives the connection up."""
        if self.body is not None:
            if self.body:
                yield self.body
            return
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"the reply broke off: {exc}") from exc
        finally:
            self._response.release()

    async def read(self) -> bytes:
        if self.body is not None:
            return self.body
        return b"".join([chunk async for chunk in self.chunks()])


class Upstream:
    """Up to `connections` requests in flight to each replica (more wait their turn)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        connections: int,
        timeout: float = REPLY_SECONDS,
        connect_timeout: float = 5.0,
    ) -> None:
        if not urls:
            raise ValueError("a service needs at least one URL")
        self.urls = tuple(url.rstrip("/") for url in urls)
        self._connections = connections
        self._timeout = timeout
        # No total: a streamed reply (a followed log) may last; `request` bounds the rest.
        self._client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
        self._sessions: list[aiohttp.ClientSession] = []
        self._turn = itertools.count()

    async def start(self) -> None:
        for url in self.urls:
            connector = aiohttp.TCPConnector(
                limit=self._connections, keepalive_timeout=IDLE_SECONDS
            )
            self._sessions.append(
                aiohttp.ClientSession(
                    base_url=url,
                    connector=connector,
                    timeout=self._client_timeout,
                    auto_decompress=False,  # the body goes on as the service wrote it
                    skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                )
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            await session.close()

    def _turns(self, replica: int | None) -> list[aiohttp.ClientSession]:
        """The sessions to try in order: the next replica in turn, then the others."""
        if not self._sessions:
            raise UpstreamError("the gateway is not started")
        count = len(self._sessions)
        if replica is not None:
            return [self._sessions[replica % count]]
        first = next(self._turn)
        return [self._sessions[(first + i) % count] for i in range(count)]

    async def request(
        self,
        method: str,
        target: bytes | str,
        headers: Iterable[Header] = (),
        body: bytes | AsyncIterable[bytes] = b"",
        *,
        timeout: float | None = None,
        replica: int | None = None,
    ) -> Reply:
        """Send one request (`target`: path and query, as the caller wrote them) to the next
        replica in turn (another when it cannot be reached; only `replica` if given) and
        return its reply (`body` bytes, or pieces sent as they come: never sent twice);
        UpstreamError when none can be reached, or the exchange breaks off,
        or the reply's head (and its body, when read whole) takes longer than `timeout`."""
        if isinstance(target, bytes):
            target = target.decode("latin-1")
        url = URL(target, encoded=True)
        sent_headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._timeout if timeout is None else timeout)
        unreachable: aiohttp.ClientConnectorError | None = None
        resent = False
        for session in self._turns(replica):
            while True:
                response: aiohttp.ClientResponse | None = None
                try:
                    async with asyncio.timeout_at(deadline):
                        response = await session.request(
                            method, url, headers=sent_headers, data=body or None
                        )
                        return await _reply(response, method)
                except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
                    if response is not None:
                        response.close()  # its state is unknown: the connection goes
                    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
                        raise UpstreamError("cannot connect in time", reached=False) from exc
                    raise UpstreamError("no reply in time") from exc
                except aiohttp.ClientConnectorError as exc:
                    unreachable = exc  # nothing was sent: the next replica may take it
                    break
                except aiohttp.ClientConnectionResetError as exc:
                    if not resent and isinstance(body, bytes):
                        resent = True
                        continue  # it never left: sending it again cannot apply it twice
                    raise UpstreamError(f"the connection closed: {exc}") from exc
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                    detail = exc or type(exc).__name__
                    raise UpstreamError(f"the exchange broke off: {detail}") from exc
        raise UpstreamError(f"cannot connect: {unreachable}", reached=False) from unreachable


async def _reply(response: aiohttp.ClientResponse, method: str) -> Reply:
    headers = [(name.lower(), value) for name, value in response.raw_headers]
    length = response.content_length
    if method != "HEAD" and (length is None or length > STREAMED_PAST_BYTES):
        # Unknown length (chunked: a log that follows a running job) or too large to hold
        # (a dataset's files): handed on as it comes.
        return Reply(response, None, headers)
    return Reply(response, await response.read(), headers)
