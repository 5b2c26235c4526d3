"""Predictions: an MLflow scoring-protocol body forwarded to whatever serves the endpoint now."""

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.serving import store
from services.serving.domain import DeploymentState
from services.serving.errors import (
    EndpointRetired,
    NothingToServe,
    PredictionRefused,
    ServingBackendUnavailable,
    endpoint_not_found,
)
from services.serving.integrations.backend import BackendUnreachable, Prediction, ServingBackend
from shared.auth import Caller, Role

# The states a live deployment answers in: a degraded one may still answer, and is asked.
ANSWERING = {DeploymentState.HEALTHY.value, DeploymentState.DEGRADED.value}
# What a framework answers for a route that just went away (a switch under way): asked again.
GONE = {404, 503}


@dataclass(frozen=True)
class Target:
    """The live deployment an endpoint's predictions are sent to."""

    deployment_id: UUID
    framework: str
    resource_id: str
    namespace: str


@dataclass(frozen=True)
class Route:
    """Where an endpoint's predictions go now, as Postgres said at `read_at`."""

    project_id: UUID
    name: str
    retired: bool
    target: Target | None
    read_at: float

    @property
    def answering(self) -> bool:
        return not self.retired and self.target is not None


class Routes:
    """Each endpoint's route, read from Postgres at most once a `ttl` per process while it has
    a deployment answering: two reads a prediction were most of the service's share of one. A
    route that changed is noticed by the framework's answer (gone, unreachable), which reads
    it afresh; one with nothing answering is read every time, so a new deployment answers at
    once."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl: float, limit: int = 10_000
    ) -> None:
        self._sessions = sessions
        self._ttl = ttl
        self._limit = limit
        self._known: dict[UUID, Route] = {}
        self._reading: dict[UUID, asyncio.Future[Route]] = {}

    async def get(self, endpoint_id: UUID, *, fresh: bool = False) -> Route:
        """`fresh`: read now, after the framework's answer said the route changed."""
        route = self._known.get(endpoint_id)
        if not fresh and route is not None and time.monotonic() - route.read_at < self._ttl:
            return route
        if fresh:
            return self._keep(endpoint_id, await self._read(endpoint_id))
        # Every request that finds the route stale waits for one read, not one read each.
        reading = self._reading.get(endpoint_id)
        if reading is None:
            reading = self._reading[endpoint_id] = asyncio.ensure_future(self._read(endpoint_id))
            reading.add_done_callback(lambda _: self._reading.pop(endpoint_id, None))
        return self._keep(endpoint_id, await asyncio.shield(reading))

    def _keep(self, endpoint_id: UUID, route: Route) -> Route:
        if route.answering:
            if len(self._known) >= self._limit:
                self._known.clear()
            self._known[endpoint_id] = route
        else:
            self._known.pop(endpoint_id, None)
        return route

    def forget(self, endpoint_id: UUID) -> None:
        """Read the endpoint's route afresh next time (it was just undeployed here)."""
        self._known.pop(endpoint_id, None)

    async def _read(self, endpoint_id: UUID) -> Route:
        async with self._sessions() as session:
            endpoint = await store.get_endpoint(session, endpoint_id)
            if endpoint is None:
                raise endpoint_not_found(endpoint_id)
            live = (
                await store.get_deployment(session, endpoint.live_deployment_id)
                if endpoint.live_deployment_id
                else None
            )
        if live is None or live.state not in ANSWERING:
            live = None
        return Route(
            project_id=endpoint.project_id,
            name=endpoint.name,
            retired=endpoint.retired,
            target=Target(
                deployment_id=live.id,
                framework=live.serving_framework,
                resource_id=live.framework_resource_id,
                namespace=live.framework_namespace,
            )
            if live
            else None,
            read_at=time.monotonic(),
        )


async def _live(
    routes: Routes, endpoint_id: UUID, caller: Caller, *, fresh: bool = False
) -> Target:
    route = await routes.get(endpoint_id, fresh=fresh)
    caller.require(route.project_id, Role.VIEWER)
    if route.retired:
        raise EndpointRetired(f"endpoint {route.name} was undeployed")
    if route.target is None:
        raise NothingToServe(f"endpoint {route.name} has no healthy deployment to answer yet")
    return route.target


def _refusal(prediction: Prediction) -> str:
    try:
        body = json.loads(prediction.body)
    except ValueError:
        return prediction.body.decode(errors="replace")[:2000]
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)


async def predict(
    routes: Routes,
    backends: Mapping[str, ServingBackend],
    endpoint_id: UUID,
    body: bytes,
    caller: Caller,
) -> Prediction:
    """The model's answer. A deployment retired between reading it and asking it (traffic just
    switched) is followed to the one that replaced it, so a rollout fails no prediction."""
    live = await _live(routes, endpoint_id, caller)
    for attempt in range(2):
        backend = backends.get(live.framework)
        if backend is None:
            raise ServingBackendUnavailable(f"no {live.framework} backend is configured")
        prediction: Prediction | None
        try:
            answer = await backend.predict(live.resource_id, live.namespace, body)
        except BackendUnreachable as exc:
            prediction, failure = None, str(exc)
        else:
            prediction = answer
            failure = f"{live.framework} answered {answer.status_code}: {_refusal(answer)}"
        if prediction is not None and prediction.status_code < 300:
            return prediction
        if prediction is not None and prediction.status_code in (400, 422):
            raise PredictionRefused(_refusal(prediction))
        if attempt == 0 and (prediction is None or prediction.status_code in GONE):
            replaced = await _live(routes, endpoint_id, caller, fresh=True)
            if replaced.deployment_id != live.deployment_id:
                live = replaced
                continue
        raise ServingBackendUnavailable(failure)
    raise ServingBackendUnavailable("the endpoint's deployments changed twice while it was asked")
