"""The data model's rules, without I/O: GPU type ids and job validation, rule by rule."""

import pytest

from services.jobs.domain import (
    Env,
    JobStatus,
    canonical_gpu_type_id,
    check_cancellable,
    gpu_node_selector,
    gpu_type_option_violations,
    validate_job,
)
from services.jobs.errors import JobAlreadyFinished

ENABLED = {"a100-80gb", "h100"}


@pytest.mark.parametrize(("raw", "canonical"), [("A100-80GB", "a100-80gb"), (" h100 ", "h100")])
def test_ids_are_canonical_lowercase(raw, canonical):
    assert canonical_gpu_type_id(raw) == canonical


@pytest.mark.parametrize(
    ("gpu_id", "label", "rules"),
    [
        ("a100-80gb", "A100 80GB", []),
        ("a100_80gb", "A100", ["gpu-type-id-kebab-case"]),
        ("-a100", "A100", ["gpu-type-id-kebab-case"]),
        ("a100--x", "A100", ["gpu-type-id-kebab-case"]),
        ("a100", "  ", ["gpu-type-label-required"]),
        ("a 100", "", ["gpu-type-id-kebab-case", "gpu-type-label-required"]),
    ],
)
def test_gpu_type_option_rules(gpu_id, label, rules):
    assert [v.rule for v in gpu_type_option_violations(gpu_id, label)] == rules


@pytest.mark.parametrize(
    ("use_gpu", "gpu_type", "gpus", "canonical", "rules"),
    [
        (True, "a100-80gb", 1, "a100-80gb", []),
        (True, "A100-80GB", None, "a100-80gb", []),  # case-insensitive, stored canonical
        (True, None, 1, None, ["gpu-type-required"]),
        (True, "", 1, None, ["gpu-type-required"]),
        (True, "t4", 1, "t4", ["gpu-type-enabled-for-env"]),
        (True, "h100", 0, "h100", ["gpu-count-positive"]),
        (False, None, None, None, []),
        (False, "h100", None, "h100", ["gpu-type-without-gpu"]),
        (False, "h100", 2, "h100", ["gpu-type-without-gpu", "gpus-without-gpu"]),
    ],
)
def test_job_validation_rules(use_gpu, gpu_type, gpus, canonical, rules):
    check = validate_job(
        env=Env.PROD, use_gpu=use_gpu, gpu_type=gpu_type, gpus=gpus, enabled_gpu_types=ENABLED
    )
    assert [v.rule for v in check.violations] == rules
    assert check.accepted == (not rules)
    assert check.gpu_type == canonical


@pytest.mark.parametrize(
    "status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.KILLED, JobStatus.REJECTED]
)
def test_finished_jobs_cannot_be_cancelled(status):
    with pytest.raises(JobAlreadyFinished):
        check_cancellable(status)


def test_validated_and_running_jobs_can_be_cancelled():
    check_cancellable(JobStatus.VALIDATED)
    check_cancellable(JobStatus.RUNNING)


def test_node_label_is_a_value_or_a_key_value_pair():
    assert gpu_node_selector("NVIDIA-A100") == (None, "NVIDIA-A100")
    assert gpu_node_selector("nvidia.com/gpu.product=NVIDIA-H100") == (
        "nvidia.com/gpu.product",
        "NVIDIA-H100",
    )
    assert gpu_node_selector(None) == (None, None)


def test_dataset_versions_must_be_known_and_verified():
    from uuid import uuid4

    from services.jobs.domain import (
        DATASET_VERSION_RANK,
        DatasetVersionState,
        dataset_version_violations,
    )

    ok, pending, gone, unknown = uuid4(), uuid4(), uuid4(), uuid4()
    known = {ok: "verified", pending: "created", gone: "failed"}
    assert dataset_version_violations([ok], known) == []
    found = dataset_version_violations([ok, unknown, pending, gone], known)
    assert [v.rule for v in found] == [
        "dataset-version-known",
        "dataset-version-verified",
        "dataset-version-verified",
    ]
    assert {v.field for v in found} == {"dataset_version_ids"}
    assert found[0].message.startswith("dataset_version_ids[1]")
    check = validate_job(
        env=Env.DEV,
        use_gpu=False,
        gpu_type=None,
        gpus=None,
        enabled_gpu_types=set(),
        dataset_version_ids=[pending],
        dataset_versions=known,
    )
    assert not check.accepted

    assert sorted(DatasetVersionState, key=DATASET_VERSION_RANK.__getitem__) == [
        DatasetVersionState.CREATED,
        DatasetVersionState.VERIFIED,
        DatasetVersionState.FAILED,
    ]
