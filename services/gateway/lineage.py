"""The lineage of a dataset version, job, MLflow run, model version or deployment, both ways:
dataset version -> job -> run -> model version -> deployment, assembled from each service's own
API with the caller's credential (what the caller may not read is left out)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode
from uuid import UUID

import orjson

from services.gateway.errors import LineageNotFound
from services.gateway.proxy import ServiceProxy
from services.gateway.upstream import UpstreamError
from shared import context
from shared.auth import CREDENTIAL_HEADER, Caller
from shared.context import CORRELATION_HEADER
from shared.errors import ServiceUnavailable


class Kind(StrEnum):
    """The kinds of node, in the chain's order (upstream first)."""

    DATASET_VERSION = "dataset_version"
    JOB = "job"
    RUN = "run"  # an MLflow run, by its run id
    MODEL_VERSION = "model_version"
    DEPLOYMENT = "deployment"


CHAIN = list(Kind)
MAX_NODES = 500  # a lineage walked further than this is cut off (`truncated`)


Json = dict[str, Any]
Node = tuple[Kind, str]


class Services:
    """GETs on the services' public APIs as the caller; None for what is absent or not theirs."""

    def __init__(self, proxies: Sequence[ServiceProxy], caller: Caller, credential: str) -> None:
        self._proxies = {proxy.name: proxy for proxy in proxies}
        self.caller = caller
        self._headers = [
            (CREDENTIAL_HEADER.lower().encode(), credential.encode("latin-1")),
            (
                CORRELATION_HEADER.lower().encode(),
                (context.correlation_id.get() or "").encode("latin-1"),
            ),
        ]

    async def get(self, service: str, path: str, **query: Any) -> Json | None:
        proxy = self._proxies.get(service)
        if proxy is None:
            return None
        target = path + (
            f"?{urlencode({k: v for k, v in query.items() if v is not None})}" if query else ""
        )
        try:
            reply = await proxy.pool.request("GET", target, self._headers)
            body = await reply.read()
        except UpstreamError as exc:
            raise ServiceUnavailable(
                f"the {service} did not answer: {exc}", service=service
            ) from exc
        if reply.status in (403, 404, 422):
            return None
        if reply.status != 200:
            raise ServiceUnavailable(
                f"the {service} answered {reply.status} for {path}", service=service
            )
        return orjson.loads(body)


@dataclass
class Lineage:
    """The nodes reached and the links between them (`upstream` -> `downstream`)."""

    start: Node
    nodes: dict[Node, Json] = field(default_factory=dict)
    edges: set[tuple[Node, Node]] = field(default_factory=set)
    truncated: bool = False

    def as_json(self) -> Json:
        def key(node: Node) -> Json:
            return {"kind": node[0].value, "id": node[1]}

        order = sorted(self.nodes, key=lambda n: (CHAIN.index(n[0]), n[1]))
        return {
            "start": key(self.start),
            "nodes": [{**key(n), "data": self.nodes[n]} for n in order],
            "edges": [
                {"from": key(a), "to": key(b)}
                for a, b in sorted(self.edges, key=lambda e: (CHAIN.index(e[0][0]), e))
            ],
            "truncated": self.truncated,
        }


async def _fetch(api: Services, kind: Kind, node_id: str) -> Json | None:
    """A node's own record, from the service that owns it."""
    if kind != Kind.RUN and not _is_uuid(node_id):
        return None  # no such node; and `..` must not become another path of the service's
    match kind:
        case Kind.DATASET_VERSION:
            return await api.get("datasets", f"/api/v1/datasets/versions/{quote(node_id)}")
        case Kind.JOB:
            return await api.get("jobs", f"/api/v1/jobs/{quote(node_id)}")
        case Kind.RUN:
            page = await api.get("jobs", "/api/v1/jobs", tracking_run_id=node_id, limit=1)
            if not page or not page["items"] or page["items"][0].get("experiment_run") is None:
                return None
            job = page["items"][0]
            return {
                **job["experiment_run"],
                "job_id": job["id"],
                "register_model": job.get("register_model"),
            }
        case Kind.MODEL_VERSION:
            return await api.get("registry", f"/api/v1/registry/models/versions/{quote(node_id)}")
        case Kind.DEPLOYMENT:
            endpoints = await api.get("serving", "/api/v1/serving/endpoints")
            for endpoint in _visible(api, endpoints):
                for deployment in endpoint.get("deployments", []):
                    if deployment["id"] == node_id:
                        return {
                            **deployment,
                            "project_id": endpoint["project_id"],
                            "endpoint_name": endpoint["name"],
                        }
    return None


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _visible(api: Services, endpoints: Json | None) -> list[Json]:
    """The serving endpoints of projects the caller sees (serving's list is not scoped)."""
    return [e for e in (endpoints or {}).get("items", []) if api.caller.sees(UUID(e["project_id"]))]


async def _upstream(api: Services, kind: Kind, data: Json) -> list[Node]:
    """The nodes one step up the chain from this one."""
    match kind:
        case Kind.JOB:
            return [(Kind.DATASET_VERSION, v) for v in data.get("dataset_version_ids", [])]
        case Kind.RUN:
            return [(Kind.JOB, data["job_id"])]
        case Kind.MODEL_VERSION:
            if data.get("run_id"):
                return [(Kind.RUN, data["run_id"])]
            source = (data.get("tags") or {}).get("source_job_id")
            return [(Kind.JOB, source)] if source else []
        case Kind.DEPLOYMENT:
            return [(Kind.MODEL_VERSION, data["model_version_id"])]
    return []


async def _downstream(api: Services, kind: Kind, data: Json) -> list[Node]:
    """The nodes one step down the chain from this one."""
    match kind:
        case Kind.DATASET_VERSION:
            uses = await api.get("datasets", f"/api/v1/datasets/versions/{data['id']}/jobs")
            return [(Kind.JOB, u["job_id"]) for u in (uses or {}).get("items", [])]
        case Kind.JOB:
            run = data.get("experiment_run")
            return [(Kind.RUN, run["tracking_run_id"])] if run else []
        case Kind.RUN:
            model = (data.get("register_model") or {}).get("model_id")
            if model is None:
                return []
            versions = await api.get(
                "registry", f"/api/v1/registry/models/{model}/versions", limit=100
            )
            return [
                (Kind.MODEL_VERSION, v["id"])
                for v in (versions or {}).get("items", [])
                if v.get("run_id") == data["tracking_run_id"]
            ]
        case Kind.MODEL_VERSION:
            model = await api.get("registry", f"/api/v1/registry/models/{data['model_id']}")
            if model is None:
                return []
            endpoints = await api.get(
                "serving", "/api/v1/serving/endpoints", project_id=model["project_id"]
            )
            return [
                (Kind.DEPLOYMENT, d["id"])
                for e in _visible(api, endpoints)
                for d in e.get("deployments", [])
                if d["model_version_id"] == data["id"]
            ]
    return []


async def lineage(api: Services, kind: Kind, node_id: str) -> Lineage:
    """Walk up from the node to its dataset versions and down to its deployments."""
    start = (kind, node_id)
    data = await _fetch(api, kind, node_id)
    if data is None:
        raise LineageNotFound(f"no {kind.value} {node_id} that you may read")
    found = Lineage(start, {start: data})
    for step, upward in ((_upstream, True), (_downstream, False)):
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for linked in await step(api, node[0], found.nodes[node]):
                edge = (linked, node) if upward else (node, linked)
                if linked not in found.nodes:
                    if len(found.nodes) >= MAX_NODES:
                        found.truncated = True
                        continue
                    linked_data = await _fetch(api, *linked)
                    if linked_data is None:
                        continue  # gone, or the caller may not read it
                    found.nodes[linked] = linked_data
                    frontier.append(linked)
                found.edges.add(edge)
    return found
