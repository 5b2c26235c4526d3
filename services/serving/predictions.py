"""Predictions: an MLflow scoring-protocol body forwarded to whatever serves the endpoint now."""

import json
from collections.abc import Mapping
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
from services.serving.models import ServingDeployment
from shared.auth import Caller, Role

# The states a live deployment answers in: a degraded one may still answer, and is asked.
ANSWERING = {DeploymentState.HEALTHY.value, DeploymentState.DEGRADED.value}
# What a framework answers for a route that just went away (a switch under way): asked again.
GONE = {404, 503}


async def _live(sessions: async_sessionmaker[AsyncSession], endpoint_id: UUID, caller: Caller) -> ServingDeployment:
    async with sessions() as session:
        endpoint = await store.get_endpoint(session, endpoint_id)
        if endpoint is None:
            raise endpoint_not_found(endpoint_id)
        caller.require(endpoint.project_id, Role.VIEWER)
        if endpoint.retired:
            raise EndpointRetired(f"endpoint {endpoint.name} was undeployed")
        live = (await store.get_deployment(session, endpoint.live_deployment_id)
                if endpoint.live_deployment_id else None)
    if live is None or live.state not in ANSWERING:
        raise NothingToServe(f"endpoint {endpoint.name} has no healthy deployment to answer yet")
    return live


def _refusal(prediction: Prediction) -> str:
    try:
        body = json.loads(prediction.body)
    except ValueError:
        return prediction.body.decode(errors="replace")[:2000]
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)


async def predict(
    sessions: async_sessionmaker[AsyncSession], backends: Mapping[str, ServingBackend], endpoint_id: UUID,
    body: bytes, caller: Caller,
) -> Prediction:
    """The model's answer. A deployment retired between reading it and asking it (traffic just
    switched) is followed to the one that replaced it, so a rollout fails no prediction."""
    live = await _live(sessions, endpoint_id, caller)
    for attempt in range(2):
        backend = backends.get(live.serving_framework)
        if backend is None:
            raise ServingBackendUnavailable(f"no {live.serving_framework} backend is configured")
        try:
            prediction = await backend.predict(live.framework_resource_id, live.framework_namespace, body)
        except BackendUnreachable as exc:
            prediction, failure = None, str(exc)
        else:
            failure = f"{live.serving_framework} answered {prediction.status_code}: {_refusal(prediction)}"
        if prediction is not None and prediction.status_code < 300:
            return prediction
        if prediction is not None and prediction.status_code in (400, 422):
            raise PredictionRefused(_refusal(prediction))
        if attempt == 0 and (prediction is None or prediction.status_code in GONE):
            replaced = await _live(sessions, endpoint_id, caller)
            if replaced.id != live.id:
                live = replaced
                continue
        raise ServingBackendUnavailable(failure)
    raise ServingBackendUnavailable("the endpoint's deployments changed twice while it was asked")
