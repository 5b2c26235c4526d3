"""The registry's rules, pure Python: stages, transitions, and what a version label may be."""

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from services.registry.errors import StageUnchanged, VersionInProduction


class ModelStage(StrEnum):
    NONE = "none"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


MAX_VERSION_LENGTH = 128


@dataclass(frozen=True)
class StageChange:
    """One recorded move of one version from a stage to another."""

    version_id: UUID
    version: str
    from_stage: ModelStage
    to_stage: ModelStage
    comment: str | None


@dataclass(frozen=True)
class VersionState:
    id: UUID
    version: str
    stage: ModelStage


def plan_transition(
    version: VersionState,
    target: ModelStage,
    comment: str | None,
    current_production: VersionState | None,
) -> list[StageChange]:
    """The stage changes a transition causes, in the order they are recorded.

    A version may move from any stage to any other. Promoting one to production archives the
    version that served production until then, as its own transition, so a model never has two.
    """
    if version.stage == target:
        raise StageUnchanged(f"version {version.version} is already in stage '{target}'")
    changes: list[StageChange] = []
    if (
        target == ModelStage.PRODUCTION
        and current_production is not None
        and current_production.id != version.id
    ):
        changes.append(
            StageChange(
                current_production.id,
                current_production.version,
                ModelStage.PRODUCTION,
                ModelStage.ARCHIVED,
                f"superseded by version {version.version}",
            )
        )
    changes.append(StageChange(version.id, version.version, version.stage, target, comment))
    return changes


def requires_approval(target: ModelStage) -> bool:
    """A move into production is an approval: who and when are kept on the version."""
    return target == ModelStage.PRODUCTION


def check_deletable(version: VersionState) -> None:
    if version.stage == ModelStage.PRODUCTION:
        raise VersionInProduction(
            f"version {version.version} is in production; archive it or promote another first"
        )
