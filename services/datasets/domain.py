"""The datasets service's rules, pure Python: what a dataset and a version may be, the version's
life cycle (created -> verified -> active, or -> failed), and the lineage tree."""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from shared.errors import Conflict, InvalidInput

VERSIONING_SYSTEM = "dvc"
# A name is also the folder a `.dvc` file restores, so it is a safe single path segment.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
DVC_DIR_HASH = re.compile(r"^[0-9a-f]{32}\.dir$")
MAX_DESCRIPTION = 10_000
MAX_TAGS = 50
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 512


class VersionState(StrEnum):
    CREATED = "created"
    VERIFIED = "verified"
    ACTIVE = "active"
    FAILED = "failed"


# An active version goes back to verified when another version of its dataset is activated; a
# verified or active one whose objects are found corrupted on a later check fails.
TRANSITIONS: Mapping[VersionState, frozenset[VersionState]] = {
    VersionState.CREATED: frozenset({VersionState.VERIFIED, VersionState.FAILED}),
    VersionState.VERIFIED: frozenset({VersionState.ACTIVE, VersionState.FAILED}),
    VersionState.ACTIVE: frozenset({VersionState.VERIFIED, VersionState.FAILED}),
    VersionState.FAILED: frozenset(),
}


@dataclass(frozen=True)
class Violation:
    """One broken rule, naming the request field it is about."""

    field: str
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"loc": ["body", self.field], "msg": self.message, "type": self.rule}


class DatasetInvalid(InvalidInput):
    kind = "dataset-invalid"
    title = "The dataset or version breaks the rules of the data model"

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__(
            "; ".join(f"{v.field}: {v.message}" for v in violations),
            errors=[v.to_dict() for v in violations],
        )
        self.violations = tuple(violations)


class IllegalVersionTransition(Conflict):
    kind = "illegal-dataset-version-transition"
    title = "The dataset version cannot move to that state"


def raise_if(violations: Sequence[Violation]) -> None:
    if violations:
        raise DatasetInvalid(violations)


def dataset_violations(
    name: str, description: str | None, tags: Mapping[str, str]
) -> list[Violation]:
    found = []
    if not NAME_PATTERN.match(name):
        found.append(
            Violation(
                "name",
                "name-format",
                "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
        )
    if description is not None and len(description) > MAX_DESCRIPTION:
        found.append(
            Violation("description", "description-length", f"at most {MAX_DESCRIPTION} characters")
        )
    if description is not None and "\x00" in description:
        found.append(Violation("description", "no-nul", "must not contain a NUL character"))
    if any("\x00" in key or "\x00" in value for key, value in tags.items()):
        found.append(
            Violation("tags", "no-nul", "keys and values must not contain a NUL character")
        )
    if len(tags) > MAX_TAGS:
        found.append(Violation("tags", "tag-count", f"at most {MAX_TAGS} tags"))
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
            found.append(
                Violation(
                    "tags",
                    "tag-length",
                    f"tag {key[:40]!r}: keys 1 to "
                    f"{MAX_TAG_KEY} characters, values at most {MAX_TAG_VALUE}",
                )
            )
    return found


def version_tag_violations(version_tag: str | None) -> list[Violation]:
    if version_tag is not None and not TAG_PATTERN.match(version_tag):
        return [
            Violation(
                "version_tag",
                "version-tag-format",
                "1 to 128 letters, digits, '.', '_', '+' or '-'",
            )
        ]
    return []


@dataclass(frozen=True)
class VersionNode:
    """A version as the lineage sees it."""

    id: UUID
    dataset_id: UUID
    version_id: str
    parent_id: UUID | None


def parent_violations(
    dataset_id: UUID,
    new_version_id: str,
    parent: VersionNode | None,
    asked: str | None,
    ancestors: Iterable[VersionNode] = (),
) -> list[Violation]:
    """A parent named must be a version of the same dataset, and the new version must not be one
    of its ancestors (the lineage is a tree, never a cycle)."""
    if asked is None:
        return []
    if parent is None:
        return [
            Violation(
                "parent_version_id", "parent-exists", f"no version {asked} of dataset {dataset_id}"
            )
        ]
    if parent.dataset_id != dataset_id:
        return [
            Violation(
                "parent_version_id",
                "parent-same-dataset",
                f"version {asked} belongs to dataset {parent.dataset_id}, not {dataset_id}",
            )
        ]
    if new_version_id == parent.version_id or any(
        a.version_id == new_version_id for a in ancestors
    ):
        return [
            Violation(
                "parent_version_id",
                "lineage-acyclic",
                f"the new content {new_version_id} is already {asked} or one of its "
                "ancestors; a version cannot descend from itself",
            )
        ]
    return []


def check_transition(current: VersionState, to: VersionState) -> None:
    if to not in TRANSITIONS[current]:
        raise IllegalVersionTransition(
            f"a {current.value} version cannot become {to.value}",
            state=current.value,
            to_state=to.value,
        )


def activation_violation(state: VersionState) -> IllegalVersionTransition | None:
    """Only a verified version is activated (an active one stays as it is)."""
    if state in (VersionState.VERIFIED, VersionState.ACTIVE):
        return None
    return IllegalVersionTransition(
        f"only a verified version can be activated; this one is {state.value}",
        state=state.value,
        to_state=VersionState.ACTIVE.value,
    )


def ancestors_of(node: VersionNode, by_id: Mapping[UUID, VersionNode]) -> list[VersionNode]:
    """The chain from the version's parent up to its root, parent first; stops on a loop."""
    chain, seen = [], {node.id}
    current = node.parent_id
    while current is not None and current not in seen and current in by_id:
        seen.add(current)
        chain.append(by_id[current])
        current = by_id[current].parent_id
    return chain


def lineage_tree(nodes: Sequence[VersionNode], describe) -> list[dict[str, Any]]:
    """The dataset's versions as nested trees (roots first, children in the order given);
    `describe(node)` gives each node's fields, to which `children` is added."""
    children: dict[UUID | None, list[VersionNode]] = {}
    known = {n.id for n in nodes}
    for node in nodes:
        parent = node.parent_id if node.parent_id in known else None
        children.setdefault(parent, []).append(node)

    def build(node: VersionNode, path: frozenset[UUID]) -> dict[str, Any]:
        kids = [build(c, path | {c.id}) for c in children.get(node.id, []) if c.id not in path]
        return {**describe(node), "children": kids}

    return [build(root, frozenset({root.id})) for root in children.get(None, [])]
