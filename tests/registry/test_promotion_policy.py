"""The promotion policy, rule by rule, on the registry's API against the real Postgres and NATS:
each rule off until a project turns it on, the pending state, distinct approvers, the author
refused, the metric gate, a model's override beating its project's policy, and the events."""

import uuid
from uuid import UUID

import asyncpg
import httpx
import pytest

from services.registry import service
from services.registry.domain import Candidate, MetricGate, ModelStage, PromotionPolicy
from services.registry.errors import (
    AuthorMayNotApprove,
    InvalidMetricGate,
    MetricGateNotMet,
    StagingRequired,
)
from shared.auth import Role
from tests.bus import wait_for_events
from tests.credentials import credential_headers
from tests.registry.conftest import ACTOR

PROBLEM = "application/problem+json"


def as_(project: str, role: Role, subject: str | None = None) -> dict[str, str]:
    """The credential of a member of `project` with `role` there and no platform role."""
    subject = subject or f"{role.value}-{uuid.uuid4().hex[:6]}"
    return credential_headers(subject, role=None, project_roles={UUID(project): role})


def refused(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith(f"/{kind}"), r.json()
    return r.json()


async def set_policy(client: httpx.AsyncClient, project: str, **rules) -> dict:
    r = await client.put(f"/projects/{project}/promotion-policy", json=rules)
    assert r.status_code == 200, r.text
    return r.json()


async def new_version(client: httpx.AsyncClient, model: dict, headers=None, **body) -> dict:
    r = await client.post(f"/models/{model['id']}/versions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def move(client, version: dict, stage: str, headers=None) -> httpx.Response:
    return await client.post(
        f"/models/versions/{version['id']}/transition", json={"stage": stage}, headers=headers
    )


async def stage_of(client, version: dict) -> str:
    r = await client.get(f"/models/{version['model_id']}/versions/{version['version']}")
    return r.json()["stage"]


# ---- the rules, without I/O


def candidate(stage=ModelStage.STAGING, metrics=None, author="ann") -> Candidate:
    return Candidate("1", stage, metrics or {}, author)


def test_a_metric_gate_is_parsed_into_conditions_and_written_back_the_same():
    gate = MetricGate.parse("  auc >= 0.9 AND loss<0.2 and f1 != 1e-3 ")
    assert str(gate) == "auc >= 0.9 and loss < 0.2 and f1 != 0.001"
    exact = MetricGate.parse("auc > 0.123456789012345 and n>=3 and val/f1-macro <= -1e20")
    assert str(exact) == "auc > 0.123456789012345 and n >= 3.0 and val/f1-macro <= -1e+20"
    assert MetricGate.parse(str(exact)) == exact
    assert MetricGate.parse(str(gate)) == gate
    assert gate.failures({"auc": 0.95, "loss": 0.1, "f1": 0.5}) == []
    assert gate.failures({"auc": 0.85, "f1": 0.001}) == [
        "auc >= 0.9 (auc is 0.85)",
        "loss < 0.2 (no metric 'loss')",
        "f1 != 0.001 (f1 is 0.001)",
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "auc",
        "auc >= ",
        ">= 0.9",
        "auc => 0.9",
        "auc >= 0.9 or loss < 1",
        "auc >= nan",
        "auc >= inf",
        "auc >= 1e999",
        "auc >= 0.9 and",
        "import os",
        "auc >= \u0661",
        "a" * 1001,
    ],
)
def test_a_metric_gate_that_is_not_conditions_joined_by_and_is_refused(expression):
    with pytest.raises(InvalidMetricGate) as err:
        MetricGate.parse(expression)
    assert err.value.status == 422


def test_every_rule_is_off_by_default():
    policy = PromotionPolicy()
    assert not policy.active
    policy.check_move(candidate(ModelStage.NONE))
    policy.check_approver("ann", candidate(author="ann"))


def test_each_rule_refuses_on_its_own():
    with pytest.raises(StagingRequired):
        PromotionPolicy(require_staging=True).check_move(candidate(ModelStage.NONE))
    PromotionPolicy(require_staging=True).check_move(candidate(ModelStage.STAGING))
    gate = PromotionPolicy(metric_gate=MetricGate.parse("auc >= 0.9"))
    with pytest.raises(MetricGateNotMet):
        gate.check_move(candidate(metrics={"auc": 0.5}))
    gate.check_move(candidate(metrics={"auc": 0.9}))
    author = PromotionPolicy(forbid_author_approval=True)
    with pytest.raises(AuthorMayNotApprove) as err:
        author.check_approver("ann", candidate(author="ann"))
    assert err.value.status == 403
    author.check_approver("bob", candidate(author="ann"))
    assert PromotionPolicy(approvals_required=2).active


# ---- through the API


async def test_with_no_policy_a_move_to_production_works_as_it_always_did(client, project, model):
    r = await client.get(f"/projects/{project}/promotion-policy")
    assert r.json() == {
        "project_id": project,
        "model_id": None,
        "source": "none",
        "require_staging": False,
        "approvals_required": 0,
        "forbid_author_approval": False,
        "metric_gate": None,
        "updated_by": None,
        "updated_at": None,
    }
    v = await new_version(client, model)
    editor = as_(project, Role.EDITOR)
    r = refused(await move(client, v, "production", editor), 403, "forbidden")
    assert r["required_role"] == "approver"
    approver = as_(project, Role.APPROVER, "approver-x")
    r = await move(client, v, "production", approver)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["approved_by"] == "approver-x"
    listed = await client.get("/promotion-requests", params={"project_id": project})
    assert listed.json() == {"items": [], "total": 0}


async def test_a_move_to_staging_or_archived_records_no_approval(client, project, model):
    v = await new_version(client, model)
    approver = as_(project, Role.APPROVER, "approver-s")
    for stage in ("staging", "archived", "staging"):
        r = await move(client, v, stage, approver)
        assert r.status_code == 200, r.text
        assert (r.json()["version"]["approved_by"], r.json()["version"]["approved_at"]) == (
            None,
            None,
        ), stage
    r = await move(client, v, "production", approver)
    approved = r.json()["version"]
    assert approved["approved_by"] == "approver-s" and approved["approved_at"] is not None
    # Archiving it, by someone else, keeps the approval of the move to production as it was.
    r = await move(client, v, "archived", as_(project, Role.EDITOR, "editor-s"))
    kept = r.json()["version"]
    assert (kept["stage"], kept["approved_by"], kept["approved_at"]) == (
        "archived",
        "approver-s",
        approved["approved_at"],
    )


async def test_staging_before_production_when_the_project_turns_it_on(client, project, model):
    policy = await set_policy(client, project, require_staging=True)
    assert (policy["source"], policy["require_staging"], policy["updated_by"]) == (
        "project",
        True,
        ACTOR,
    )
    assert (await client.get(f"/projects/{project}/promotion-policy")).json() == policy
    v = await new_version(client, model)
    r = refused(await move(client, v, "production"), 409, "staging-required")
    assert "staging" in r["detail"]
    assert await stage_of(client, v) == "none"
    assert (await move(client, v, "staging")).status_code == 200
    assert (await move(client, v, "production")).status_code == 200

    # Off again: straight to production.
    r = await client.delete(f"/projects/{project}/promotion-policy")
    assert r.status_code == 204
    assert (await client.get(f"/projects/{project}/promotion-policy")).json()["source"] == "none"
    fresh = await new_version(client, model)
    assert (await move(client, fresh, "production")).status_code == 200


async def test_n_distinct_approvers_move_a_pending_request(client, nc, project, model):
    await set_policy(client, project, approvals_required=2)
    editor = as_(project, Role.EDITOR, "eve")
    v = await new_version(client, model, editor)
    # An editor may ask once approvals are what moves a version; the request waits.
    r = await client.post(
        f"/models/versions/{v['id']}/transition",
        json={"stage": "production", "comment": "ship"},
        headers=editor,
    )
    assert r.status_code == 202, r.text
    request = r.json()
    assert (
        request["status"],
        request["approvals_required"],
        request["approvals"],
        request["requested_by"],
        request["comment"],
    ) == ("pending", 2, [], "eve", "ship")
    assert await stage_of(client, v) == "none"
    refused(await move(client, v, "production"), 409, "promotion-pending")

    listed = (await client.get("/promotion-requests", params={"project_id": project})).json()
    assert [r["id"] for r in listed["items"]] == [request["id"]] and listed["total"] == 1
    approve = f"/promotion-requests/{request['id']}/approve"
    r = refused(await client.post(approve, json={}, headers=editor), 403, "forbidden")
    assert r["required_role"] == "approver"

    ann, bob = as_(project, Role.APPROVER, "ann"), as_(project, Role.APPROVER, "bob")
    r = await client.post(approve, json={"comment": "looks good"}, headers=ann)
    assert r.status_code == 200, r.text
    assert r.json()["version"] is None and r.json()["transitions"] == []
    assert [a["approver"] for a in r.json()["request"]["approvals"]] == ["ann"]
    assert await stage_of(client, v) == "none"
    # The same approver twice is one approval.
    refused(await client.post(approve, json={}, headers=ann), 409, "already-approved")
    assert await stage_of(client, v) == "none"

    r = await client.post(approve, json={}, headers=bob)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["request"]["status"] == "approved" and done["request"]["closed_by"] == "bob"
    assert [a["approver"] for a in done["request"]["approvals"]] == ["ann", "bob"]
    assert (done["version"]["stage"], done["version"]["approved_by"]) == ("production", "bob")
    assert [(t["to_stage"], t["comment"]) for t in done["transitions"]] == [("production", "ship")]
    assert await stage_of(client, v) == "production"
    refused(
        await client.post(approve, json={}, headers=as_(project, Role.APPROVER)),
        409,
        "promotion-request-closed",
    )
    pending = (await client.get("/promotion-requests", params={"project_id": project})).json()
    assert pending["total"] == 0
    closed = await client.get(
        "/promotion-requests", params={"project_id": project, "status": "approved"}
    )
    assert [r["id"] for r in closed.json()["items"]] == [request["id"]]

    events = await wait_for_events(nc, "REGISTRY", v["id"], count=5)
    assert [e.type.split(".")[-2] for e in events] == [
        "created",
        "approval_requested",
        "approved",
        "approved",
        "transitioned",
    ]
    assert events[1].data["requested_by"] == "eve" and events[1].data["approvals_required"] == 2
    assert [(e.actor, e.data["approver"], e.data["approvals"]) for e in events[2:4]] == [
        ("ann", "ann", 1),
        ("bob", "bob", 2),
    ]
    assert events[4].data["to_stage"] == "production" and events[4].actor == "bob"


async def test_the_author_may_not_approve_when_the_rule_is_on(client, project, model):
    author = as_(project, Role.APPROVER, "author-a")
    other = as_(project, Role.APPROVER, "other-a")
    v = await new_version(client, model, author)
    assert (await move(client, v, "staging", author)).status_code == 200

    await set_policy(client, project, forbid_author_approval=True)
    refused(await move(client, v, "production", author), 403, "author-may-not-approve")
    assert await stage_of(client, v) == "staging"
    r = await move(client, v, "production", other)
    assert r.status_code == 200 and r.json()["version"]["approved_by"] == "other-a"

    # With approvals, the author may ask but not approve.
    await set_policy(client, project, forbid_author_approval=True, approvals_required=1)
    w = await new_version(client, model, author)
    r = await move(client, w, "production", author)
    assert r.status_code == 202, r.text
    approve = f"/promotion-requests/{r.json()['id']}/approve"
    refused(await client.post(approve, json={}, headers=author), 403, "author-may-not-approve")
    r = await client.post(approve, json={}, headers=other)
    assert r.json()["version"]["stage"] == "production"

    # Off: the author approves their own.
    await set_policy(client, project)
    x = await new_version(client, model, author)
    assert (await move(client, x, "production", author)).status_code == 200


async def test_a_metric_gate_holds_back_a_version_whose_metrics_miss_it(client, project, model):
    policy = await set_policy(client, project, metric_gate="auc>=0.9")
    assert policy["metric_gate"] == "auc >= 0.9"
    low = await new_version(client, model, metrics={"auc": 0.85})
    r = refused(await move(client, low, "production"), 409, "metric-gate-not-met")
    assert r["metric_gate"] == "auc >= 0.9" and r["failed"] == ["auc >= 0.9 (auc is 0.85)"]
    none = await new_version(client, model)
    refused(await move(client, none, "production"), 409, "metric-gate-not-met")
    # Other stages are not gated.
    assert (await move(client, low, "staging")).status_code == 200
    high = await new_version(client, model, metrics={"auc": 0.93})
    assert (await move(client, high, "production")).status_code == 200


async def test_a_bad_metric_gate_is_422_and_the_policy_stays_as_it_was(client, project):
    before = await set_policy(client, project, require_staging=True)
    for gate in ("auc >> 0.9", "auc >= 0.9 or loss < 1", "drop table"):
        r = await client.put(
            f"/projects/{project}/promotion-policy",
            json={"approvals_required": 3, "metric_gate": gate},
        )
        refused(r, 422, "invalid-metric-gate")
    r = await client.put(f"/projects/{project}/promotion-policy", json={"approvals_required": 11})
    refused(r, 422, "invalid-input")
    for loose in ("yes", 1, "true"):  # a rule is turned on by true, nothing that looks like it
        r = await client.put(
            f"/projects/{project}/promotion-policy", json={"require_staging": loose}
        )
        refused(r, 422, "invalid-input")
    assert (await client.get(f"/projects/{project}/promotion-policy")).json() == before


async def test_a_models_override_beats_its_projects_policy(client, nc, project, model):
    await set_policy(client, project, require_staging=True)
    other = (
        await client.post(
            "/models", json={"name": f"o-{uuid.uuid4().hex[:6]}", "project_id": project}
        )
    ).json()
    r = await client.put(
        f"/models/{model['id']}/promotion-policy", json={"metric_gate": "auc >= 0.5"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["source"], r.json()["model_id"], r.json()["require_staging"]) == (
        "model",
        model["id"],
        False,
    )
    assert (await client.get(f"/models/{model['id']}/promotion-policy")).json() == r.json()
    seen = (await client.get(f"/models/{other['id']}/promotion-policy")).json()
    assert (seen["source"], seen["require_staging"]) == ("project", True)

    # The override's rules, not the project's, apply to its model; the project's to the other.
    v = await new_version(client, model, metrics={"auc": 0.7})
    assert (await move(client, v, "production")).status_code == 200
    refused(
        await move(client, await new_version(client, model), "production"),
        409,
        "metric-gate-not-met",
    )
    refused(
        await move(client, await new_version(client, other), "production"), 409, "staging-required"
    )

    # Cleared, the project's applies again.
    assert (await client.delete(f"/models/{model['id']}/promotion-policy")).status_code == 204
    assert (await client.get(f"/models/{model['id']}/promotion-policy")).json()[
        "source"
    ] == "project"
    w = await new_version(client, model, metrics={"auc": 0.7})
    refused(await move(client, w, "production"), 409, "staging-required")

    changed = await wait_for_events(nc, "REGISTRY", model["id"], count=3)
    policies = [e.data["policy"] for e in changed if e.type.endswith("promotion_policy.changed.v1")]
    assert policies == [
        {
            "require_staging": False,
            "approvals_required": 0,
            "forbid_author_approval": False,
            "metric_gate": "auc >= 0.5",
        },
        None,
    ]


async def test_only_a_project_admin_sets_its_policy_and_anyone_in_it_reads_it(
    client, project, model
):
    for role in (Role.VIEWER, Role.EDITOR, Role.APPROVER):
        headers = as_(project, role)
        r = await client.put(
            f"/projects/{project}/promotion-policy", json={"require_staging": True}, headers=headers
        )
        assert refused(r, 403, "forbidden")["required_role"] == "admin"
        r = await client.put(f"/models/{model['id']}/promotion-policy", json={}, headers=headers)
        assert refused(r, 403, "forbidden")["required_role"] == "admin"
        r = await client.delete(f"/projects/{project}/promotion-policy", headers=headers)
        assert r.status_code == 403
        r = await client.get(f"/projects/{project}/promotion-policy", headers=headers)
        assert r.status_code == 200
    outsider = as_(str(uuid.uuid4()), Role.ADMIN)
    r = await client.get(f"/projects/{project}/promotion-policy", headers=outsider)
    assert r.status_code == 403
    owner = as_(project, Role.ADMIN, "owner-p")
    r = await client.put(
        f"/projects/{project}/promotion-policy", json={"require_staging": True}, headers=owner
    )
    assert r.status_code == 200 and r.json()["updated_by"] == "owner-p"
    assert (await client.get(f"/models/{uuid.uuid4()}/promotion-policy")).status_code == 404


async def test_a_request_is_rejected_by_an_approver_or_withdrawn_by_who_made_it(
    client, nc, project, model
):
    await set_policy(client, project, approvals_required=1)
    editor = as_(project, Role.EDITOR, "ed-r")
    v = await new_version(client, model)
    first = (await move(client, v, "production", editor)).json()
    r = await client.post(
        f"/promotion-requests/{first['id']}/reject", json={"reason": "not yet"}, headers=editor
    )
    assert refused(r, 403, "forbidden")["required_role"] == "approver"
    r = await client.post(
        f"/promotion-requests/{first['id']}/reject",
        json={"reason": "not yet"},
        headers=as_(project, Role.APPROVER, "ap-r"),
    )
    assert (r.json()["status"], r.json()["closed_by"], r.json()["reason"]) == (
        "rejected",
        "ap-r",
        "not yet",
    )
    refused(
        await client.post(f"/promotion-requests/{first['id']}/approve", json={}),
        409,
        "promotion-request-closed",
    )
    assert await stage_of(client, v) == "none"

    second = (await move(client, v, "production", editor)).json()
    assert second["status"] == "pending"
    withdraw = f"/promotion-requests/{second['id']}/withdraw"
    refused(
        await client.post(withdraw, json={}, headers=as_(project, Role.EDITOR)),
        403,
        "not-the-requester",
    )
    r = await client.post(withdraw, json={}, headers=editor)
    assert r.json()["status"] == "withdrawn"
    got = (await client.get(f"/promotion-requests/{second['id']}")).json()
    assert got["status"] == "withdrawn"
    refused(
        await client.get(f"/promotion-requests/{uuid.uuid4()}"), 404, "promotion-request-not-found"
    )

    events = await wait_for_events(nc, "REGISTRY", v["id"], count=5)
    closed = [
        (e.data["status"], e.data["closed_by"])
        for e in events
        if e.type.endswith("approval_closed.v1")
    ]
    assert closed == [("rejected", "ap-r"), ("withdrawn", "ed-r")]


async def test_the_rules_are_checked_again_when_the_last_approval_comes(client, project, model):
    await set_policy(client, project, approvals_required=1)
    v = await new_version(client, model)
    request = (await move(client, v, "production")).json()
    await set_policy(client, project, require_staging=True, approvals_required=1)  # while it waits
    r = await client.post(f"/promotion-requests/{request['id']}/approve", json={})
    refused(r, 409, "staging-required")
    assert await stage_of(client, v) == "none"
    # Nothing of the refused approval was kept: the request still waits, without approvals.
    got = (await client.get(f"/promotion-requests/{request['id']}")).json()
    assert (got["status"], got["approvals"]) == ("pending", [])


@pytest.mark.parametrize("stage", ["archived", "none"])
async def test_archiving_a_waiting_version_or_moving_it_back_supersedes_its_request(
    client, nc, project, model, stage
):
    await set_policy(client, project, approvals_required=1)
    v = await new_version(client, model)
    assert (await move(client, v, "staging")).status_code == 200
    request = (await move(client, v, "production")).json()
    mover = as_(project, Role.EDITOR, "ed-s")

    r = await move(client, v, stage, mover)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["stage"] == stage, r.text
    got = (await client.get(f"/promotion-requests/{request['id']}")).json()
    assert (got["status"], got["closed_by"], got["reason"]) == (
        "superseded",
        "ed-s",
        f"version {v['version']} was moved to {stage}",
    )
    refused(
        await client.post(f"/promotion-requests/{request['id']}/approve", json={}),
        409,
        "promotion-request-closed",
    )
    assert await stage_of(client, v) == stage
    listed = await client.get("/promotion-requests", params={"status": "superseded"})
    assert request["id"] in [found["id"] for found in listed.json()["items"]], listed.text
    events = await wait_for_events(nc, "REGISTRY", v["id"], count=5)
    assert [
        (e.data["status"], e.data["closed_by"], e.data["model_name"])
        for e in events
        if e.type.endswith("approval_closed.v1")
    ] == [("superseded", "ed-s", model["name"])]

    # A move with no request waiting supersedes nothing, and a new request can be made.
    assert (await move(client, v, "staging")).status_code == 200
    again = (await move(client, v, "production")).json()
    assert again["status"] == "pending" and again["id"] != request["id"]


async def test_a_consumer_moves_a_version_through_the_same_policy(client, runtime, project, model):
    await set_policy(client, project, approvals_required=2)
    v = await new_version(client, model)
    async with runtime.uow() as uow:
        outcome = await service.request_transition(
            uow,
            UUID(v["id"]),
            stage=ModelStage.PRODUCTION,
            comment="from a pipeline",
            actor="pipeline-run",
            approver=True,
        )
    assert isinstance(outcome, service.AwaitingApprovals)
    assert outcome.request["requested_by"] == "pipeline-run"
    assert await stage_of(client, v) == "none"
    async with runtime.uow() as uow:
        moved = await service.request_transition(
            uow,
            UUID(v["id"]),
            stage=ModelStage.STAGING,
            comment=None,
            actor="pipeline-run",
            approver=False,
        )
    assert isinstance(moved, service.Moved) and moved.version["stage"] == "staging"


async def a_version(scratch) -> tuple[UUID, UUID]:
    """A model and a version of it, written straight into a scratch database's tables."""
    model, version = uuid.uuid4(), uuid.uuid4()
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, created_by)"
        " VALUES ($1, $2, 'm', 'a')",
        model,
        uuid.uuid4(),
    )
    await scratch.execute(
        "INSERT INTO registry.model_versions (id, model_id, version, created_by)"
        " VALUES ($1, $2, '1', 'a')",
        version,
        model,
    )
    return model, version


async def test_0011_adds_the_policy_tables_and_the_database_keeps_one_pending_request(scratch):
    await scratch.upgrade("0011")
    model, version = await a_version(scratch)
    pending = (
        "INSERT INTO registry.promotion_requests (id, version_id, model_id, project_id,"
        " to_stage, approvals_required, requested_by, requested_at)"
        " VALUES ($1, $2, $3, $3, 'production', 1, 'a', now())"
    )
    await scratch.execute(pending, uuid.uuid4(), version, model)
    with pytest.raises(asyncpg.UniqueViolationError):
        await scratch.execute(pending, uuid.uuid4(), version, model)
    with pytest.raises(asyncpg.CheckViolationError):
        await scratch.execute(
            "INSERT INTO registry.promotion_policies (id, project_id, approvals_required,"
            " updated_by) VALUES ($1, $2, 11, 'a')",
            uuid.uuid4(),
            uuid.uuid4(),
        )
    await scratch.downgrade("0010")
    left = await scratch.fetch("SELECT to_regclass('registry.promotion_requests') AS t")
    assert left[0]["t"] is None
    assert len(await scratch.fetch("SELECT * FROM registry.model_versions")) == 1


async def test_approve_reject_and_withdraw_take_no_body_as_the_readme_types_them(
    client, project, model
):
    await set_policy(client, project, approvals_required=1)
    editor = as_(project, Role.EDITOR, "asker")
    asked = []
    for _ in range(3):
        r = await move(client, await new_version(client, model), "production", editor)
        assert r.status_code == 202, r.text
        asked.append(r.json()["id"])
    approver = as_(project, Role.APPROVER, "nobody-typed-a-body")
    r = await client.post(f"/promotion-requests/{asked[0]}/approve", headers=approver)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["stage"] == "production"
    assert r.json()["request"]["approvals"][0]["comment"] is None
    r = await client.post(f"/promotion-requests/{asked[1]}/reject", headers=approver)
    assert (r.status_code, r.json()["status"]) == (200, "rejected"), r.text
    r = await client.post(f"/promotion-requests/{asked[2]}/withdraw", headers=editor)
    assert (r.status_code, r.json()["status"]) == (200, "withdrawn"), r.text


async def test_0013_lets_a_request_be_superseded_and_its_downgrade_calls_it_withdrawn(scratch):
    await scratch.upgrade("0013")
    model, version = await a_version(scratch)
    request = (
        "INSERT INTO registry.promotion_requests (id, version_id, model_id, project_id,"
        " to_stage, approvals_required, status, requested_by, requested_at)"
        " VALUES ($1, $2, $3, $3, 'production', 1, $4, 'a', now())"
    )
    await scratch.execute(request, uuid.uuid4(), version, model, "superseded")
    with pytest.raises(asyncpg.CheckViolationError):
        await scratch.execute(request, uuid.uuid4(), version, model, "forgotten")
    await scratch.downgrade("0012")
    statuses = await scratch.fetch("SELECT status FROM registry.promotion_requests")
    assert [row["status"] for row in statuses] == ["withdrawn"]
