"""The registry's rules, pure Python: stages, transitions, what a version label may be, and
the promotion policy a move to production follows."""

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from services.registry.errors import (
    AuthorMayNotApprove,
    InvalidMetricGate,
    MetricGateNotMet,
    StageUnchanged,
    StagingRequired,
    VersionInProduction,
)


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


# The most approvals a policy may ask for: more is a typo, not a governance rule.
MAX_APPROVALS = 10
MAX_METRIC_GATE_LENGTH = 1000
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION = re.compile(
    r"\s*(?P<metric>[A-Za-z_][\w.\-/]*)\s*(?P<op>>=|<=|==|!=|>|<)"
    r"\s*(?P<threshold>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*",
    re.ASCII,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Condition:
    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold!r}"  # repr: exact, and parsed back


@dataclass(frozen=True)
class MetricGate:
    """Conditions on a version's metrics, all of which must hold: `auc >= 0.9 and loss < 0.2`.
    A metric the version does not have fails its condition."""

    conditions: tuple[Condition, ...]

    @classmethod
    def parse(cls, expression: str) -> "MetricGate":
        """The gate an expression says, or 422 `invalid-metric-gate` naming what is wrong."""
        if len(expression) > MAX_METRIC_GATE_LENGTH:
            raise InvalidMetricGate(f"a metric gate is at most {MAX_METRIC_GATE_LENGTH} characters")
        conditions = []
        for part in _AND.split(expression.strip()):
            found = _CONDITION.fullmatch(part)
            if found is None:
                raise InvalidMetricGate(
                    f"'{part.strip()}' is not '<metric> <op> <number>' (op one of "
                    f"{', '.join(_COMPARISONS)}); join conditions with 'and'"
                )
            threshold = float(found["threshold"])
            if not math.isfinite(threshold):
                raise InvalidMetricGate(f"'{part.strip()}': the threshold must be finite")
            conditions.append(Condition(found["metric"], found["op"], threshold))
        return cls(tuple(conditions))

    def failures(self, metrics: Mapping[str, float]) -> list[str]:
        """The conditions `metrics` do not meet, each with the value found."""
        failed = []
        for c in self.conditions:
            value = metrics.get(c.metric)
            if value is None:
                failed.append(f"{c} (no metric '{c.metric}')")
            elif not _COMPARISONS[c.op](value, c.threshold):
                failed.append(f"{c} ({c.metric} is {value!r})")
        return failed

    def __str__(self) -> str:
        return " and ".join(map(str, self.conditions))


@dataclass(frozen=True)
class Candidate:
    """What the promotion policy looks at in a version about to move to production."""

    version: str
    stage: ModelStage
    metrics: Mapping[str, float]
    created_by: str


@dataclass(frozen=True)
class PromotionPolicy:
    """The rules a move to production follows; each is off by default.

    `approvals_required` 0 keeps a move by an approver its own approval; N > 0 makes the move
    a request that waits for N approvals from distinct approvers."""

    require_staging: bool = False
    approvals_required: int = 0
    forbid_author_approval: bool = False
    metric_gate: MetricGate | None = None

    @property
    def active(self) -> bool:
        return (
            self.require_staging
            or self.approvals_required > 0
            or self.forbid_author_approval
            or self.metric_gate is not None
        )

    def check_move(self, version: Candidate) -> None:
        """409 naming the rule that the version's move to production breaks, if one does."""
        if self.require_staging and version.stage != ModelStage.STAGING:
            raise StagingRequired(
                f"version {version.version} is in stage '{version.stage}'; the promotion policy "
                "moves only a version in staging to production"
            )
        if self.metric_gate is not None:
            failed = self.metric_gate.failures(version.metrics)
            if failed:
                raise MetricGateNotMet(
                    f"version {version.version} does not meet the metric gate "
                    f"'{self.metric_gate}': {'; '.join(failed)}",
                    metric_gate=str(self.metric_gate),
                    failed=failed,
                )

    def check_approver(self, approver: str, version: Candidate) -> None:
        """403 when the policy forbids `approver`, the version's author, to approve it."""
        if self.forbid_author_approval and approver == version.created_by:
            raise AuthorMayNotApprove(
                f"{approver!r} created version {version.version}; the promotion policy lets "
                "only someone else approve it"
            )
