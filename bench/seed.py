"""The same data on both sides: N models x M versions (the last promoted to production), plus
empty models the create_version load writes into. Seeded through each side's API, 32 in flight."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import httpx

from bench.load import MLFLOW_SOURCE, MlflowTarget, ModelplaneTarget, Target

log = logging.getLogger("bench.seed")


class _Retrying:
    """Seeding is not measured: a 503 (e.g. the gateway reusing a keep-alive connection the
    backend had just closed, see README) is retried up to 3 times, and counted."""

    retried = 0

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _send(self, method: str, url: str, **kwargs) -> httpx.Response:
        for attempt in range(4):
            response = await self._client.request(method, url, **kwargs)
            if response.status_code != 503 or attempt == 3:
                return response
            _Retrying.retried += 1
            log.warning("seed: %s %s answered 503 (%s); retrying", method, url, response.text[:200])
            await asyncio.sleep(0.1)
        return response

    async def post(self, url: str, **kwargs) -> httpx.Response:
        return await self._send("POST", url, **kwargs)


async def _pool(
    jobs: Iterable[Callable[[httpx.AsyncClient], Awaitable[None]]], target: Target, concurrency: int
) -> None:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        async with target.client() as client:
            while not queue.empty():
                job = queue.get_nowait()
                await job(_Retrying(client))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:500]}"
        )
    return response.json()


async def seed(
    target: Target, models: int, versions: int, write_models: int, concurrency: int
) -> None:
    started = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    model_keys: list[str] = [""] * models
    by_model: dict[int, list[tuple[str, str]]] = {i: [] for i in range(models)}
    writes: list[str] = [""] * write_models

    if isinstance(target, ModelplaneTarget):
        async with target.client() as client:
            project = _check(
                await _Retrying(client).post("/api/v1/projects", json={"name": f"bench-{run}"})
            )
        target.project_id = project["id"]

    async def create_model(
        name: str, store: list[str], index: int, client: httpx.AsyncClient
    ) -> None:
        if isinstance(target, ModelplaneTarget):
            body = _check(
                await client.post(
                    target.prefix, json={"name": name, "project_id": target.project_id}
                )
            )
            store[index] = body["id"]
        else:
            _check(
                await client.post(f"{target.prefix}/registered-models/create", json={"name": name})
            )
            store[index] = name

    def model_job(name: str, store: list[str], index: int):
        return lambda client: create_model(name, store, index, client)

    jobs = [model_job(f"seed-{run}-{i}", model_keys, i) for i in range(models)]
    jobs += [model_job(f"write-{run}-{i}", writes, i) for i in range(write_models)]
    await _pool(jobs, target, concurrency)

    async def create_version(index: int, client: httpx.AsyncClient) -> None:
        key = model_keys[index]
        if isinstance(target, ModelplaneTarget):
            body = _check(await client.post(f"{target.prefix}/{key}/versions", json={}))
            by_model[index].append((body["version"], body["id"]))
        else:
            body = _check(
                await client.post(
                    f"{target.prefix}/model-versions/create",
                    json={"name": key, "source": MLFLOW_SOURCE},
                )
            )
            by_model[index].append((body["model_version"]["version"], ""))

    # Round-robin over models: the jobs in flight at one moment are versions of different models.
    jobs = [
        (lambda client, i=i: create_version(i, client))
        for _ in range(versions)
        for i in range(models)
    ]
    await _pool(jobs, target, concurrency)

    for i in range(models):
        by_model[i].sort(key=lambda pair: int(pair[0]))

    async def promote_last(index: int, client: httpx.AsyncClient) -> None:
        label, version_id = by_model[index][-1]
        if isinstance(target, ModelplaneTarget):
            _check(
                await client.post(
                    f"{target.prefix}/versions/{version_id}/transition",
                    json={"stage": "production"},
                )
            )
        else:
            _check(
                await client.post(
                    f"{target.prefix}/model-versions/transition-stage",
                    json={
                        "name": model_keys[index],
                        "version": label,
                        "stage": "Production",
                        "archive_existing_versions": True,
                    },
                )
            )

    await _pool(
        [(lambda client, i=i: promote_last(i, client)) for i in range(models)], target, concurrency
    )

    target.seed.models = model_keys
    target.seed.versions = {model_keys[i]: by_model[i] for i in range(models)}
    target.seed.write_models = writes
    log.info(
        "%s seeded: %d models x %d versions + %d empty models in %.1f s",
        target.name,
        models,
        versions,
        write_models,
        time.perf_counter() - started,
    )


__all__ = ["MlflowTarget", "ModelplaneTarget", "seed"]
