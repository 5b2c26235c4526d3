"""The datasets domain's rules, without I/O."""

from uuid import uuid4

import pytest

from services.datasets.domain import (
    DatasetInvalid,
    IllegalVersionTransition,
    VersionNode,
    VersionState,
    activation_violation,
    ancestors_of,
    check_transition,
    dataset_violations,
    lineage_tree,
    parent_violations,
    raise_if,
    version_tag_violations,
)


def node(dataset_id, version_id, parent=None):
    return VersionNode(uuid4(), dataset_id, version_id, parent.id if parent else None)


def test_dataset_fields():
    assert dataset_violations("imagenet-1k_v2.0", "a description", {"team": "vision"}) == []
    fields = {v.field for v in dataset_violations("../x", "d" * 10_001, {"": "v"})}
    assert fields == {"name", "description", "tags"}
    assert [v.field for v in version_tag_violations("has space")] == ["version_tag"]
    assert version_tag_violations("v1.0+rc1") == [] and version_tag_violations(None) == []


def test_one_422_lists_every_violation_with_its_field():
    with pytest.raises(DatasetInvalid) as caught:
        raise_if(dataset_violations("", None, {f"k{i}": "v" for i in range(51)}))
    body = caught.value.to_dict()
    assert body["status"] == 422
    assert [e["loc"] for e in body["errors"]] == [["body", "name"], ["body", "tags"]]


def test_a_parent_must_be_of_the_same_dataset_and_not_a_descendant():
    dataset, other = uuid4(), uuid4()
    root = node(dataset, "a.dir")
    child = node(dataset, "b.dir", root)
    assert parent_violations(dataset, "c.dir", child, str(child.id), [root]) == []
    assert parent_violations(dataset, "c.dir", None, None) == []
    assert parent_violations(dataset, "c.dir", None, "x")[0].rule == "parent-exists"
    assert (
        parent_violations(dataset, "c.dir", node(other, "z.dir"), "z")[0].rule
        == "parent-same-dataset"
    )
    assert parent_violations(dataset, "a.dir", child, "b", [root])[0].rule == "lineage-acyclic"
    assert parent_violations(dataset, "b.dir", child, "b", [root])[0].rule == "lineage-acyclic"


def test_life_cycle():
    check_transition(VersionState.CREATED, VersionState.VERIFIED)
    check_transition(VersionState.VERIFIED, VersionState.ACTIVE)
    check_transition(VersionState.ACTIVE, VersionState.FAILED)
    for current, to in (
        (VersionState.CREATED, VersionState.ACTIVE),
        (VersionState.FAILED, VersionState.VERIFIED),
        (VersionState.FAILED, VersionState.ACTIVE),
    ):
        with pytest.raises(IllegalVersionTransition):
            check_transition(current, to)
    assert activation_violation(VersionState.VERIFIED) is None
    assert activation_violation(VersionState.CREATED).status == 409
    assert activation_violation(VersionState.FAILED) is not None


def test_lineage_tree_and_ancestors():
    dataset = uuid4()
    root = node(dataset, "r.dir")
    left, right = node(dataset, "l.dir", root), node(dataset, "x.dir", root)
    leaf = node(dataset, "f.dir", left)
    nodes = [root, left, right, leaf]
    by_id = {n.id: n for n in nodes}

    assert ancestors_of(leaf, by_id) == [left, root]
    (tree,) = lineage_tree(nodes, lambda n: {"v": n.version_id})
    assert tree["v"] == "r.dir"
    assert [c["v"] for c in tree["children"]] == ["l.dir", "x.dir"]
    assert tree["children"][0]["children"][0]["v"] == "f.dir"


def test_a_loop_in_stored_rows_does_not_hang_the_walk():
    dataset = uuid4()
    a_id, b_id = uuid4(), uuid4()
    a, b = VersionNode(a_id, dataset, "a", b_id), VersionNode(b_id, dataset, "b", a_id)
    assert ancestors_of(a, {a_id: a, b_id: b}) == [b]
    assert lineage_tree([a, b], lambda n: {}) == []
