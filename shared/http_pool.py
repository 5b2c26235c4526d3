"""Keep-alive HTTP/1.1 connections to one origin: the gateway's hop to each service.

It sits on every proxied request, so it is lean: a request is one write of bytes built here, a
reply is parsed by httptools (uvicorn's parser) straight from the socket's protocol callbacks.
aiohttp's client spent ~480 µs of CPU per request on this hop, this ~60 µs (bench/README.md).

At most `size` requests are in flight at once; more wait their turn (FIFO). A reply whose
length is known is read whole before `request` returns, which frees its connection at once; one
of unknown length (chunked: a log that follows a running job) is handed over as it arrives.
"""

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from urllib.parse import urlsplit

import httptools

Header = tuple[bytes, bytes]
# A streamed reply stops reading from its socket while this many chunks wait for the caller.
_STREAM_HIGH_WATER = 64


class UpstreamError(Exception):
    """The origin could not be reached, broke the exchange off, or did not answer in time."""


class Reply:
    """A response: its status, its headers (names lower-case, as sent), and its body: `body`
    when the origin gave its length, else `chunks()` as they arrive."""

    __slots__ = ("_stream", "body", "headers", "status")

    def __init__(self, status: int, headers: list[Header], body: bytes | None,
                 stream: "_Stream | None" = None) -> None:  # fmt: skip
        self.status = status
        self.headers = headers
        self.body = body
        self._stream = stream

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Leaving early gives up the connection."""
        if self._stream is None:
            return _once(self.body or b"")
        return self._stream.chunks()

    async def read(self) -> bytes:
        if self.body is not None:
            return self.body
        return b"".join([chunk async for chunk in self.chunks()])


async def _once(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


class _Stream:
    """The chunks of one streamed reply, from the connection's callbacks to the caller."""

    def __init__(self, connection: "_Connection") -> None:
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._wakeup: asyncio.Future | None = None

    def put(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        if len(self._chunks) >= _STREAM_HIGH_WATER:
            self._connection.pause()
        self._wake()

    def end(self, error: BaseException | None = None) -> None:
        self._ended = True
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    if len(self._chunks) < _STREAM_HIGH_WATER // 4:
                        self._connection.resume()
                    yield chunk
                elif self._ended:
                    if self._error is not None:
                        raise UpstreamError(f"the reply broke off: {self._error}")
                    return
                else:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
        finally:
            if not self._ended:
                self._connection.abandon()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one exchange at a time."""

    def __init__(self, pool: "HttpPool") -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._reply: asyncio.Future[Reply] | None = None
        self._stream: _Stream | None = None
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._head_request = False
        self._paused = False
        self.closed = False
        self.idle_since = 0.0

    # What the pool calls ------------------------------------------------------------------

    def send(self, data: bytes, *, head_request: bool) -> asyncio.Future[Reply]:
        assert self._transport is not None and self._reply is None
        self._reply = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._stream = [], [], None
        self._head_request = head_request
        self._transport.write(data)
        return self._reply

    def abandon(self) -> None:
        """Give the connection up mid-exchange: its state is unknown, so it is closed."""
        self.close()
        self._finish(UpstreamError("the exchange was abandoned"))

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None and not self.closed:
            self._paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.close()

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._transport = transport  # uvloop's transports are not asyncio.Transport subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            self._finish(UpstreamError(f"the reply is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if self._reply is not None:
            self._finish(UpstreamError(f"the connection closed: {exc or 'by the origin'}"))

    # httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        reply = self._reply
        status = self._parser.get_status_code()
        if self._head_request:
            # No body follows, whatever its headers say; the parser would wait for one.
            self.close()
            self._complete(Reply(status, self._headers, b""))
            return
        if reply is not None and not _has_length(self._headers):
            self._stream = _Stream(self)
            reply.set_result(Reply(status, self._headers, None, self._stream))

    def on_body(self, body: bytes) -> None:
        if self._stream is not None:
            self._stream.put(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.close()
        if self._stream is not None:
            self._stream.end()
            self._complete(None)
        else:
            status = self._parser.get_status_code()
            self._complete(Reply(status, self._headers, b"".join(self._body)))

    # Ends of an exchange ------------------------------------------------------------------

    def _complete(self, reply: Reply | None) -> None:
        future, self._reply = self._reply, None
        self._stream = None
        if future is not None and reply is not None and not future.done():
            future.set_result(reply)
        self._pool._release(self)

    def _finish(self, error: UpstreamError) -> None:
        """The exchange failed: the caller, or the reader of its stream, hears why."""
        future, self._reply = self._reply, None
        stream, self._stream = self._stream, None
        if future is not None and not future.done():
            future.set_exception(error)
        if stream is not None:
            stream.end(error)
        self._pool._release(self)


def _has_length(headers: list[Header]) -> bool:
    return any(name == b"content-length" for name, _ in headers)


class HttpPool:
    """Up to `size` keep-alive connections to the origin of `url`, most recently used first.

    Idle connections retire after `idle_seconds`, before the origin's own keep-alive timeout
    (uvicorn's: 5 s) could close one under a request just sent on it.
    """

    def __init__(
        self,
        url: str,
        *,
        size: int,
        idle_seconds: float = 2.0,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        origin = urlsplit(url)
        if origin.scheme != "http" or not origin.hostname:
            raise ValueError(f"an http:// origin is needed, not {url!r}")
        self._host = origin.hostname
        self._port = origin.port or 80
        self._host_header = origin.netloc.encode("latin-1")
        self._size = size
        self._idle_seconds = idle_seconds
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[_Connection] = deque()
        self._busy: set[_Connection] = set()
        self._closed = False

    async def request(
        self,
        method: str,
        target: bytes | str,
        headers: Iterable[Header] = (),
        body: bytes = b"",
        *,
        timeout: float | None = None,
    ) -> Reply:
        """Send one request (`target`: path and query) and return its reply; UpstreamError when
        the origin cannot be reached, breaks off or takes longer than `timeout` to answer."""
        if self._closed:
            raise UpstreamError("the pool is closed")
        data = self._encode(method, target, headers, body)
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                await self._slots.acquire()
                try:
                    connection = self._idle_connection() or await self._connect()
                except BaseException:
                    self._slots.release()
                    raise
                self._busy.add(connection)
                return await connection.send(data, head_request=method == "HEAD")
        except TimeoutError:
            if connection is not None:
                connection.abandon()
            raise UpstreamError(f"no reply from {self._host}:{self._port} in time") from None
        except BaseException:
            if connection is not None:
                connection.abandon()
            raise

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    def _encode(
        self, method: str, target: bytes | str, headers: Iterable[Header], body: bytes
    ) -> bytes:
        if isinstance(target, str):
            target = target.encode("latin-1")
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", self._host_header,
                 b"\r\ncontent-length: ", str(len(body)).encode("ascii"), b"\r\n"]  # fmt: skip
        for name, value in headers:
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise ValueError(f"header {name!r} may not contain a line break")
            lines += (name, b": ", value, b"\r\n")
        lines += (b"\r\n", body)
        return b"".join(lines)

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._idle_seconds:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self), self._host, self._port
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"cannot connect to {self._host}:{self._port}: {exc or type(exc).__name__}"
            ) from exc
        return connection

    def _release(self, connection: _Connection) -> None:
        """The connection's exchange ended: its slot is free, and the connection too if it
        can carry another."""
        if connection not in self._busy:
            return
        self._busy.discard(connection)
        self._slots.release()
        if connection.closed or self._closed:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        # Idle connections past their time are closed from the oldest end.
        while self._idle and connection.idle_since - self._idle[0].idle_since > self._idle_seconds:
            self._idle.popleft().close()

    def _forget(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(connection)
