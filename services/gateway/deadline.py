"""A request's body must arrive within a deadline, or the caller gets 408 and the connection
closes: a client trickling a body would otherwise hold a connection and a task for ever (the
server's own timeout covers the headers only)."""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import RequestTimeout
from shared.http import problem_response

CLOSE = {"Connection": "close"}


class BodyDeadline:
    """ASGI middleware: the body's messages are awaited until `seconds` after the request
    started; waiting on past the body (for the client to go away) is not limited."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        state = {"body_done": False, "timed_out": False, "started": False}

        async def receive_in_time() -> Message:
            if state["body_done"]:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                state["timed_out"] = True
                raise RequestTimeout(
                    f"the request body did not arrive within {self.seconds:g} s",
                    timeout_seconds=self.seconds,
                ) from None
            if message["type"] != "http.request" or not message.get("more_body"):
                state["body_done"] = True
            return message

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                if state["timed_out"]:
                    # What is left of the body is never read: the connection cannot go on.
                    message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, receive_in_time, send_closing)
        except RequestTimeout as problem:
            if state["started"]:
                raise
            reply = problem_response(problem.to_dict(instance=scope["path"]), CLOSE)
            await reply(scope, receive, send)
