"""FastAPI dependencies every service's routes use. Async, so none costs a threadpool hop."""

from typing import Annotated

from fastapi import Depends, Query, Request

from shared import context
from shared.auth import Caller
from shared.errors import Unauthorized
from shared.runtime import ServiceRuntime

Limit = Annotated[int, Query(ge=1, le=1000)]
# A bigint, as Postgres takes it.
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]


async def runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def caller() -> Caller:
    """Who is calling, as the gateway's credential says (CorrelationMiddleware verified it)."""
    found = context.caller.get()
    if found is None:
        raise Unauthorized("the request carries no credential from the gateway")
    return found


async def actor() -> str:
    """Who is acting, as the gateway authenticated them; every write records it."""
    name = context.actor.get()
    if not name:
        raise Unauthorized("the request carries no authenticated actor")
    return name


Runtime = Annotated[ServiceRuntime, Depends(runtime)]
Actor = Annotated[str, Depends(actor)]
Who = Annotated[Caller, Depends(caller)]
