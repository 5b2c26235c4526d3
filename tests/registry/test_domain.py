"""The stage rules, without I/O."""

from uuid import uuid4

import pytest

from services.registry.domain import (
    ModelStage,
    VersionState,
    check_deletable,
    plan_transition,
    requires_approval,
)
from services.registry.errors import StageUnchanged, VersionInProduction


def version(stage: ModelStage, label: str = "1") -> VersionState:
    return VersionState(id=uuid4(), version=label, stage=stage)


@pytest.mark.parametrize("stage", list(ModelStage))
def test_a_transition_to_the_current_stage_is_refused(stage):
    with pytest.raises(StageUnchanged) as err:
        plan_transition(version(stage), stage, None, None)
    assert err.value.status == 409


@pytest.mark.parametrize(
    ("start", "target"),
    [(a, b) for a in ModelStage for b in ModelStage if a != b],
)
def test_any_other_stage_is_reachable_and_recorded_once(start, target):
    v = version(start)
    changes = plan_transition(v, target, "why", None)
    assert [(c.version_id, c.from_stage, c.to_stage, c.comment) for c in changes] == [
        (v.id, start, target, "why")
    ]


def test_promotion_archives_the_version_serving_production_first():
    serving = version(ModelStage.PRODUCTION, "1")
    candidate = version(ModelStage.STAGING, "2")
    changes = plan_transition(candidate, ModelStage.PRODUCTION, "ship it", serving)
    assert [(c.version_id, c.from_stage, c.to_stage) for c in changes] == [
        (serving.id, ModelStage.PRODUCTION, ModelStage.ARCHIVED),
        (candidate.id, ModelStage.STAGING, ModelStage.PRODUCTION),
    ]
    assert changes[0].comment == "superseded by version 2"
    assert changes[1].comment == "ship it"


def test_promotion_with_production_empty_archives_nothing():
    changes = plan_transition(version(ModelStage.NONE), ModelStage.PRODUCTION, None, None)
    assert len(changes) == 1


def test_leaving_production_archives_nothing_else():
    serving = version(ModelStage.PRODUCTION)
    changes = plan_transition(serving, ModelStage.ARCHIVED, None, serving)
    assert [(c.from_stage, c.to_stage) for c in changes] == [
        (ModelStage.PRODUCTION, ModelStage.ARCHIVED)
    ]


@pytest.mark.parametrize("target", list(ModelStage))
def test_only_production_needs_approval(target):
    assert requires_approval(target) is (target == ModelStage.PRODUCTION)


def test_a_production_version_cannot_be_deleted():
    with pytest.raises(VersionInProduction):
        check_deletable(version(ModelStage.PRODUCTION))
    for stage in (ModelStage.NONE, ModelStage.STAGING, ModelStage.ARCHIVED):
        check_deletable(version(stage))
