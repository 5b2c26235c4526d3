"""The health watcher: brings each deployment's framework resource in line with Postgres and
turns what the framework says into the life cycle, one event per change, never one per poll.

Every round reads the deployments not yet retired (so a restart carries on where the last
process stopped) and, for each: asks its framework to deploy one just created, takes down one
marked for retirement, or reads the health of the rest. A framework that does not answer is
asked again after a back-off that doubles up to `max_backoff`; its deployments are degraded,
not failed, until `HealthPolicy.unreachable_timeout` (10 minutes by default) has passed.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from services.serving import service, store
from services.serving.domain import (
    DeploymentState,
    Health,
    HealthPolicy,
    Observation,
    StateChange,
    observed_state,
)
from services.serving.integrations.backend import (
    DEPLOYMENT_ID_LABEL,
    ENDPOINT_ID_LABEL,
    MODEL_VERSION_ID_LABEL,
    BackendUnreachable,
    DeploymentRejected,
    DeploymentTarget,
    ServingBackend,
)
from services.serving.models import ServingEndpoint
from shared.db import UnitOfWork

log = logging.getLogger(__name__)

DEFAULT_GPU_NODE_LABEL = "nvidia.com/gpu.product"
DEFAULT_POLICY = HealthPolicy()


@dataclass(frozen=True)
class Work:
    """One deployment as a round found it, read in a transaction that is over by the time the
    framework is called."""

    id: UUID
    endpoint_id: UUID
    state: DeploymentState
    retire_requested: bool
    framework: str
    target: DeploymentTarget
    created_at: datetime
    unreachable_since: datetime | None
    framework_status: dict


def node_selector(node_label: str | None) -> dict[str, str]:
    """A GPU type's node label, `key=value` or just the value under the usual GPU product key."""
    if not node_label:
        return {}
    key, sep, value = node_label.partition("=")
    return {key: value} if sep else {DEFAULT_GPU_NODE_LABEL: node_label}


class Reconciler:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        backends: Mapping[str, ServingBackend],
        *,
        policy: HealthPolicy = DEFAULT_POLICY,
        interval: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self._uow = uow
        self.backends = backends
        self.policy = policy
        self.interval = interval
        self.max_backoff = max_backoff
        self._retry_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._bad_looks: dict[UUID, int] = {}  # per deployment, in a row; a restart starts over
        self._task: asyncio.Task | None = None
        self.rounds = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Reconciler"]:
        self._task = asyncio.create_task(self._run(), name="serving-reconciler")
        try:
            yield self
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except Exception:
                log.exception("serving reconciler: a round failed; the next one tries again")
            await asyncio.sleep(self.interval)

    async def _work(self) -> list[Work]:
        async with self._uow() as uow:
            deployments = await store.unretired_deployments(uow.session)
            gpu_labels: dict[tuple[str, str], str | None] = {}
            endpoints: dict[UUID, ServingEndpoint] = {}
            for deployment in deployments:
                if deployment.endpoint_id not in endpoints:
                    endpoint = await store.get_endpoint(uow.session, deployment.endpoint_id)
                    assert endpoint is not None, "a deployment's endpoint is never deleted"
                    endpoints[deployment.endpoint_id] = endpoint
                env = endpoints[deployment.endpoint_id].env
                if deployment.gpu_type and (env, deployment.gpu_type) not in gpu_labels:
                    option = (await store.enabled_gpu_types(uow.session, env)).get(
                        deployment.gpu_type
                    )
                    gpu_labels[env, deployment.gpu_type] = option.node_label if option else None
            return [
                Work(
                    id=d.id,
                    endpoint_id=d.endpoint_id,
                    state=DeploymentState(d.state),
                    retire_requested=d.retire_requested,
                    framework=d.serving_framework,
                    created_at=d.created_at,
                    unreachable_since=d.unreachable_since,
                    framework_status=d.framework_status,
                    target=DeploymentTarget(
                        resource_id=d.framework_resource_id,
                        namespace=d.framework_namespace,
                        model_uri=d.model_uri,
                        spec=service.spec_of(d),
                        labels={
                            DEPLOYMENT_ID_LABEL: str(d.id),
                            ENDPOINT_ID_LABEL: str(d.endpoint_id),
                            MODEL_VERSION_ID_LABEL: str(d.model_version_id),
                        },
                        node_selector=node_selector(
                            gpu_labels.get((endpoints[d.endpoint_id].env, d.gpu_type))
                            if d.gpu_type
                            else None
                        ),
                    ),
                )
                for d in deployments
            ]

    async def reconcile_once(self) -> None:
        self.rounds += 1
        silent: set[str] = set()  # frameworks that did not answer this round
        works = await self._work()
        for gone in self._bad_looks.keys() - {work.id for work in works}:
            del self._bad_looks[gone]
        for work in works:
            backend = self.backends.get(work.framework)
            if backend is None:
                log.warning("deployment %s: no %s backend is configured", work.id, work.framework)
                continue
            if work.framework in silent:
                # Asked once this round: each other deployment of it learns the outage too,
                # so none waits behind the first for its state.
                if not work.retire_requested:
                    observation = Observation(
                        Health.UNREACHABLE, f"{work.framework} does not answer"
                    )
                    await self._record(work, self._observe(work, observation), unreachable=True)
                continue
            if time.monotonic() < self._retry_at.get(work.framework, 0.0):
                continue
            try:
                reached = await self._step(work, backend)
            except Exception:
                log.exception("deployment %s: reconciling failed; tried again next round", work.id)
                continue
            self._note_reach(work.framework, reached)
            if not reached:
                silent.add(work.framework)

    def _note_reach(self, framework: str, reached: bool) -> None:
        if reached:
            self._retry_at.pop(framework, None)
            self._backoff.pop(framework, None)
            return
        delay = min(self._backoff.get(framework, self.interval) * 2, self.max_backoff)
        self._backoff[framework] = delay
        self._retry_at[framework] = time.monotonic() + delay
        log.warning("%s did not answer; asking again in %.0f s", framework, delay)

    async def _record(
        self,
        work: Work,
        change: StateChange | None,
        *,
        framework_status: dict | None = None,
        unreachable: bool = False,
    ) -> None:
        learnt = (
            change is not None
            or unreachable != (work.unreachable_since is not None)
            or (framework_status is not None and framework_status != work.framework_status)
        )
        if not learnt:
            return  # a poll that learnt nothing writes nothing
        async with self._uow() as uow:
            await service.record_state(
                uow, work.id, change, framework_status=framework_status, unreachable=unreachable
            )

    def _observe(self, work: Work, observation: Observation) -> StateChange | None:
        if observation.health in (Health.NOT_READY, Health.UNREACHABLE):
            self._bad_looks[work.id] = self._bad_looks.get(work.id, 0) + 1
        else:
            self._bad_looks.pop(work.id, None)
        return observed_state(
            work.state,
            observation,
            requested_at=work.created_at,
            unreachable_since=work.unreachable_since,
            now=datetime.now(UTC),
            bad_looks=self._bad_looks.get(work.id, 0),
            policy=self.policy,
        )

    async def _step(self, work: Work, backend: ServingBackend) -> bool:
        """One deployment's turn; False when its framework did not answer."""
        target = work.target
        if work.retire_requested:
            try:
                await backend.retire(target.resource_id, target.namespace)
            except BackendUnreachable as exc:
                log.warning("deployment %s: retiring it failed: %s", work.id, exc)
                return False
            await self._record(
                work, StateChange(DeploymentState.RETIRED, "taken off its framework")
            )
            return True
        if work.state == DeploymentState.CREATED:
            try:
                await backend.deploy(target)
            except BackendUnreachable as exc:
                await self._record(
                    work,
                    self._observe(work, Observation(Health.UNREACHABLE, str(exc))),
                    unreachable=True,
                )
                return False
            except DeploymentRejected as exc:
                await self._record(work, StateChange(DeploymentState.FAILED, str(exc)))
                return True
            await self._record(
                work, StateChange(DeploymentState.DEPLOYING, "accepted by its framework")
            )
            return True
        status = await backend.status(target.resource_id, target.namespace)
        unreachable = status.observation.health == Health.UNREACHABLE
        await self._record(
            work,
            self._observe(work, status.observation),
            framework_status=None if unreachable else status.framework_status,
            unreachable=unreachable,
        )
        return not unreachable
