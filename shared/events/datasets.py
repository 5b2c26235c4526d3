"""Events published by the datasets service on stream DATASETS (subjects `datasets.>`).

A dataset version publishes one event per change of state, `datasets.dataset_version.<state>`:
created, verified, activated, failed. `dataset_version_id` is the version's UUID (what jobs name
in `dataset_version_ids`); `version_id` is DVC's content hash of it (`<md5>.dir`). A consumer
that must refuse an unverified version keeps the ids it saw verified and not since failed.
"""

from datetime import datetime
from uuid import UUID

from pydantic import Field

from shared.events.envelope import EventData


class DatasetCreated(EventData):
    subject = "datasets.dataset.created"
    dataset_id: UUID
    project_id: UUID
    name: str
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    created_by: str


class DatasetVersionEvent(EventData):
    """What every event about one dataset version carries."""

    dataset_version_id: UUID
    dataset_id: UUID
    dataset_name: str
    project_id: UUID
    versioning_system: str
    version_id: str
    parent_version_id: str | None = None
    version_tag: str | None = None
    state: str


class DatasetVersionCreated(DatasetVersionEvent):
    """The version's files were hashed and stored in its DVC remote; it is not yet verified."""

    subject = "datasets.dataset_version.created"
    checksum: str
    storage_uri: str
    file_count: int
    total_size_bytes: int
    compression_ratio: float
    created_at: datetime
    created_by: str


class DatasetVersionVerified(DatasetVersionEvent):
    """Every object of the version was read back from the remote and matched its hash."""

    subject = "datasets.dataset_version.verified"


class DatasetVersionActivated(DatasetVersionEvent):
    """The version is its dataset's active one; `previous_dataset_version_id` was until now."""

    subject = "datasets.dataset_version.activated"
    previous_dataset_version_id: UUID | None = None


class DatasetVersionFailed(DatasetVersionEvent):
    """Verification found objects missing or not matching their hash; the version is unusable."""

    subject = "datasets.dataset_version.failed"
    reason: str
    mismatched_files: list[str] = Field(default_factory=list)
    missing_files: list[str] = Field(default_factory=list)
