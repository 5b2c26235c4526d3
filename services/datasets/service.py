"""The datasets service's use cases. Each change commits in one unit of work with its event; the
hashing, pushing, diffing and verifying against a DVC remote happen outside any transaction (in
a worker thread), before the unit of work that records what they found."""

import asyncio
import os
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

from services.datasets import store
from services.datasets.domain import (
    VERSIONING_SYSTEM,
    VersionNode,
    VersionState,
    Violation,
    activation_violation,
    ancestors_of,
    check_transition,
    dataset_violations,
    lineage_tree,
    parent_violations,
    raise_if,
    version_tag_violations,
)
from services.datasets.errors import (
    DatasetNameTaken,
    DatasetNotFound,
    DatasetRemoteInvalid,
    DatasetVersionExists,
    DatasetVersionNotFound,
    SourceUnreadable,
    VersionUnreadable,
)
from services.datasets.integrations import dvc
from services.datasets.integrations.dvc import (
    DvcRemote,
    HashedDirectory,
    NotADirectory,
    RemoteChoice,
    RemoteInvalid,
)
from services.datasets.models import DatasetRecord, DatasetVersion
from shared.db import UnitOfWork
from shared.events.datasets import (
    DatasetCreated,
    DatasetVersionActivated,
    DatasetVersionCreated,
    DatasetVersionFailed,
    DatasetVersionVerified,
)
from shared.events.gateway import IntegrationConfigChanged
from shared.runtime import ServiceRuntime

T = TypeVar("T")


def now() -> datetime:
    return datetime.now(UTC)


class Storage:
    """Where each dataset's DVC remote is: a folder per dataset under the env's remote (its
    IntegrationConfig) or else the service's own local root, so a version's unchanged files are
    stored once across the dataset's versions."""

    def __init__(self, root: Path, env: str = "dev") -> None:
        self.root = Path(root)
        self.env = env

    def remote(self, dataset_id: UUID, choice: RemoteChoice | None = None) -> DvcRemote:
        """The remote a new version of the dataset is pushed to."""
        if choice is None or choice.base is None:
            return DvcRemote(self.root / str(dataset_id))
        if "://" not in choice.base:
            return DvcRemote(Path(choice.base) / str(dataset_id))
        return _remote(f"{choice.base}/{dataset_id}", choice.options)

    def remote_at(self, storage_uri: str, choice: RemoteChoice | None = None) -> DvcRemote:
        """A stored version's remote, where it was pushed; with the env's options if it is the
        env's remote still."""
        if "://" not in storage_uri:
            return DvcRemote(Path(storage_uri))
        options = choice.options if choice is not None and choice.holds(storage_uri) else {}
        return _remote(storage_uri, options)

    async def choice(self, session) -> RemoteChoice | None:
        """The env's DVC remote, as its IntegrationConfig last said (None: none configured)."""
        config = await store.remote_config(session, self.env)
        if config is None:
            return None
        try:
            return RemoteChoice.from_config(config.backend, config.settings)
        except RemoteInvalid as exc:
            raise DatasetRemoteInvalid(str(exc), env=self.env) from exc


def _remote(url: str, options: Mapping[str, Any]) -> DvcRemote:
    try:
        return DvcRemote(url, options)
    except RemoteInvalid as exc:
        raise DatasetRemoteInvalid(str(exc)) from exc


async def version_remote(
    rt: ServiceRuntime, storage: Storage, version: DatasetVersion
) -> DvcRemote:
    async with rt.sessionmaker() as session:
        choice = await storage.choice(session)
    return storage.remote_at(version.storage_uri, choice)


# Datasets


async def create_dataset(
    uow: UnitOfWork,
    *,
    project_id: UUID,
    name: str,
    description: str | None,
    tags: Mapping[str, str],
    actor: str,
) -> DatasetRecord:
    raise_if(dataset_violations(name, description, tags))
    dataset = await store.insert_dataset(
        uow.session,
        {
            "id": uuid4(),
            "project_id": project_id,
            "name": name,
            "description": description,
            "tags": dict(tags),
            "created_by": actor,
        },
    )
    if dataset is None:
        raise DatasetNameTaken(
            f"project {project_id} already has a dataset named '{name}'", name=name
        )
    uow.record(
        DatasetCreated(
            dataset_id=dataset.id,
            project_id=project_id,
            name=name,
            description=description,
            tags=dict(tags),
            created_by=actor,
        ),
        dataset.id,
    )
    return dataset


async def require_dataset(session, dataset_id: UUID) -> DatasetRecord:
    dataset = await store.get_dataset(session, dataset_id)
    if dataset is None:
        raise DatasetNotFound(f"no dataset has id {dataset_id}")
    return dataset


async def require_version(session, version_id: UUID) -> tuple[DatasetVersion, DatasetRecord]:
    version = await store.get_version(session, version_id)
    if version is None:
        raise DatasetVersionNotFound(f"no dataset version has id {version_id}")
    return version, await require_dataset(session, version.dataset_id)


# Versions


def source_directory(asked: str, roots: Collection[Path]) -> Path:
    """The directory named, if it lies under one of the roots versions may be made from."""
    path = Path(asked)
    allowed = [Path(r).resolve() for r in roots]
    try:
        resolved = path.resolve()
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        resolved = None
    if (
        resolved is None
        or not path.is_absolute()
        or not any(resolved.is_relative_to(r) for r in allowed)
    ):
        raise SourceUnreadable(
            f"{asked} is not an absolute path under a directory versions are made from "
            f"({', '.join(map(str, allowed))})",
            errors=[
                Violation("source_path", "source-allowed", "not under a source root").to_dict()
            ],
        )
    if not resolved.is_dir():
        raise SourceUnreadable(
            f"{asked} is not a directory this service can read",
            errors=[
                Violation("source_path", "source-directory", "not a readable directory").to_dict()
            ],
        )
    return resolved


async def _parent(session, dataset_id: UUID, asked: str | None) -> DatasetVersion | None:
    """The version `asked` names by its UUID or by its DVC content hash in this dataset."""
    if asked is None or "\x00" in asked:  # no content hash holds a NUL; Postgres takes none
        return None
    try:
        return await store.get_version(session, UUID(asked))
    except ValueError:
        return await store.find_version(session, dataset_id, asked)


def _node(version: DatasetVersion) -> VersionNode:
    return VersionNode(version.id, version.dataset_id, version.version_id, version.parent_id)


def _diff(
    old: tuple[DvcRemote, HashedDirectory] | None, new: tuple[DvcRemote, HashedDirectory]
) -> dict[str, Any]:
    """Each version's files with where its remote keeps them, compared. Imported by the first
    diff, not at start: pandas and pyarrow are 100 MB a service computing none need not hold."""
    from services.datasets.diffs import StoredFile, diff_summary

    def stored(remote: DvcRemote, directory: HashedDirectory) -> list[StoredFile]:
        return [StoredFile(f.path, f.md5, remote.object_location(f.md5)) for f in directory.files]

    return diff_summary(stored(*old) if old else [], stored(*new))


def _diff_in_remote(
    remote: DvcRemote, old_version: str | None, new: HashedDirectory
) -> dict[str, Any]:
    return _diff(
        None if old_version is None else (remote, remote.manifest(old_version)), (remote, new)
    )


def version_event_fields(dataset: DatasetRecord, version: DatasetVersion) -> dict[str, Any]:
    return {
        "dataset_version_id": version.id,
        "dataset_id": dataset.id,
        "dataset_name": dataset.name,
        "project_id": dataset.project_id,
        "versioning_system": version.versioning_system,
        "version_id": version.version_id,
        "parent_version_id": version.parent_version_id,
        "version_tag": version.version_tag,
        "state": version.state,
    }


async def create_version(
    rt: ServiceRuntime,
    storage: Storage,
    dataset_id: UUID,
    source: Path,
    *,
    parent_asked: str | None,
    version_tag: str | None,
    actor: str,
) -> DatasetVersion:
    """Hash the directory and push it to the dataset's DVC remote, diff it against its parent,
    and record it `created` with its event. Rules that need no hashing are checked first."""
    async with rt.sessionmaker() as session:
        dataset = await require_dataset(session, dataset_id)
        parent = await _parent(session, dataset_id, parent_asked)
        violations = version_tag_violations(version_tag)
        violations += parent_violations(
            dataset_id, "", _node(parent) if parent is not None else None, parent_asked
        )
        raise_if(violations)
        if version_tag is not None and await store.find_tagged(session, dataset_id, version_tag):
            raise DatasetVersionExists(
                f"dataset {dataset_id} has a version tagged '{version_tag}'",
                version_tag=version_tag,
            )
        choice = await storage.choice(session)
    remote = storage.remote(dataset_id, choice)
    try:
        pushed = await asyncio.to_thread(remote.push, source)
    except NotADirectory as exc:
        raise SourceUnreadable(
            str(exc), errors=[Violation("source_path", "source-directory", str(exc)).to_dict()]
        ) from exc
    content = pushed.directory
    async with rt.sessionmaker() as session:
        if parent is not None:
            versions, _ = await store.versions_of(session, dataset_id)
            by_id = {v.id: _node(v) for v in versions}
            ancestors = ancestors_of(_node(parent), by_id)
            raise_if(
                parent_violations(
                    dataset_id, content.version_id, _node(parent), parent_asked, ancestors
                )
            )
        existing = await store.find_version(session, dataset_id, content.version_id)
    if existing is not None:
        raise DatasetVersionExists(
            f"dataset {dataset_id} has this content already: version {existing.id} "
            f"({content.version_id})",
            dataset_version_id=str(existing.id),
            version_id=content.version_id,
        )
    summary = await from_remote(
        _diff_in_remote, remote, parent.version_id if parent else None, content
    )
    summary["against"] = parent.version_id if parent else None
    async with rt.uow() as uow:
        dataset = await require_dataset(uow.session, dataset_id)
        version = await store.insert_version(
            uow.session,
            {
                "id": uuid4(),
                "dataset_id": dataset_id,
                "versioning_system": VERSIONING_SYSTEM,
                "version_id": content.version_id,
                "parent_id": parent.id if parent else None,
                "parent_version_id": parent.version_id if parent else None,
                "version_tag": version_tag,
                "checksum": "md5:" + content.version_id.removesuffix(".dir"),
                "storage_uri": remote.url,
                "diff_summary": summary,
                "file_count": content.file_count,
                "total_size_bytes": content.total_size_bytes,
                "bytes_added": pushed.bytes_added,
                "compression_ratio": pushed.compression_ratio,
                "state": VersionState.CREATED.value,
                "created_by": actor,
            },
        )
        if version is None:
            raise DatasetVersionExists(
                f"dataset {dataset_id} got a version with this content or tag meanwhile",
                version_id=content.version_id,
            )
        uow.record(
            DatasetVersionCreated(
                **version_event_fields(dataset, version),
                checksum=version.checksum,
                storage_uri=version.storage_uri,
                file_count=version.file_count,
                total_size_bytes=version.total_size_bytes,
                compression_ratio=version.compression_ratio,
                created_at=version.created_at,
                created_by=actor,
            ),
            version.id,
        )
    return version


async def verify_version(rt: ServiceRuntime, storage: Storage, version_id: UUID) -> DatasetVersion:
    """Recompute every object's hash from the remote: a created version becomes verified, and any
    version whose objects do not match fails, naming the files."""
    async with rt.sessionmaker() as session:
        version, dataset = await require_version(session, version_id)
    if version.state == VersionState.FAILED:
        check_transition(VersionState.FAILED, VersionState.VERIFIED)
    remote = await version_remote(rt, storage, version)
    checked = await asyncio.to_thread(remote.verify, version.version_id)
    async with rt.uow() as uow:
        dataset, version = await _lock(uow.session, version.dataset_id, version_id)
        state, at = VersionState(version.state), now()
        if checked.ok:
            if state == VersionState.CREATED:
                store.touch(
                    version,
                    at,
                    state=VersionState.VERIFIED.value,
                    verified_at=at,
                    state_reason=None,
                )
                uow.record(
                    DatasetVersionVerified(**version_event_fields(dataset, version)), version.id
                )
            elif state == VersionState.FAILED:
                check_transition(state, VersionState.VERIFIED)
        elif state != VersionState.FAILED:
            reason = checked.describe()
            store.touch(
                version,
                at,
                state=VersionState.FAILED.value,
                state_reason=reason,
                mismatched_files=[*checked.mismatched, *checked.missing],
            )
            if dataset.active_version_id == version.id:
                store.touch(dataset, at, active_version_id=None)
            uow.record(
                DatasetVersionFailed(
                    **version_event_fields(dataset, version),
                    reason=reason,
                    mismatched_files=list(checked.mismatched),
                    missing_files=list(checked.missing),
                ),
                version.id,
            )
    return version


async def _lock(
    session, dataset_id: UUID, version_id: UUID
) -> tuple[DatasetRecord, DatasetVersion]:
    """A version and its dataset, read again under lock, the dataset first as every change takes
    them; both were read before, and neither is ever deleted."""
    dataset = await store.get_dataset(session, dataset_id, lock=True)
    version = await store.get_version(session, version_id, lock=True)
    assert dataset is not None and version is not None, "datasets and versions are never deleted"
    return dataset, version


async def activate_version(uow: UnitOfWork, version_id: UUID) -> DatasetVersion:
    """Make a verified version its dataset's active one; the one active before is verified again."""
    found = await store.get_version(uow.session, version_id)
    if found is None:
        raise DatasetVersionNotFound(f"no dataset version has id {version_id}")
    dataset, version = await _lock(uow.session, found.dataset_id, version_id)
    state = VersionState(version.state)
    if (refused := activation_violation(state)) is not None:
        raise refused
    if state == VersionState.ACTIVE:
        return version
    at, previous = now(), dataset.active_version_id
    if previous is not None and previous != version.id:
        before = await store.get_version(uow.session, previous, lock=True)
        if before is not None and before.state == VersionState.ACTIVE:
            check_transition(VersionState.ACTIVE, VersionState.VERIFIED)
            store.touch(before, at, state=VersionState.VERIFIED.value)
    check_transition(state, VersionState.ACTIVE)
    store.touch(version, at, state=VersionState.ACTIVE.value, activated_at=at)
    store.touch(dataset, at, active_version_id=version.id)
    uow.record(
        DatasetVersionActivated(
            **version_event_fields(dataset, version),
            previous_dataset_version_id=previous,
        ),
        version.id,
    )
    return version


# Reads that go to the remote


async def from_remote(read: Callable[..., T], *args: Any) -> T:
    """`read(*args)` in a worker thread; a version the remote cannot give back is a 409."""
    try:
        return await asyncio.to_thread(read, *args)
    except dvc.VersionUnreadable as exc:
        raise VersionUnreadable(str(exc)) from exc


async def lineage(session, version: DatasetVersion) -> dict[str, Any]:
    versions, _ = await store.versions_of(session, version.dataset_id)
    by_id = {v.id: _node(v) for v in versions}
    rows = {v.id: v for v in versions}
    chain = [n.id for n in reversed(ancestors_of(by_id[version.id], by_id))] + [version.id]

    def describe(node: VersionNode) -> dict[str, Any]:
        row = rows[node.id]
        return {
            "id": str(row.id),
            "version_id": row.version_id,
            "version_tag": row.version_tag,
            "state": row.state,
            "created_at": row.created_at.isoformat(),
        }

    return {
        "dataset_id": version.dataset_id,
        "version": version.id,
        "path": chain,
        "tree": lineage_tree([by_id[v.id] for v in versions], describe),
    }


async def diff_between(
    rt: ServiceRuntime, storage: Storage, version: DatasetVersion, other: DatasetVersion
) -> dict[str, Any]:
    """What changed from `other` to `version`, recomputed from their remotes' objects."""
    new_remote = await version_remote(rt, storage, version)
    old_remote = await version_remote(rt, storage, other)

    def compute() -> dict[str, Any]:
        new = new_remote.manifest(version.version_id)
        old = old_remote.manifest(other.version_id)
        return _diff((old_remote, old), (new_remote, new))

    summary = await from_remote(compute)
    summary["against"] = other.version_id
    return summary


def upload_target(upload_dir: Path) -> Path:
    """A fresh directory for one upload's files."""
    target = upload_dir / uuid4().hex
    target.mkdir(parents=True)
    os.chmod(target, 0o700)
    return target


# Jobs that used versions (the jobs service's events)


async def job_used_versions(
    uow: UnitOfWork,
    *,
    job_id: UUID,
    job_name: str,
    project_id: UUID,
    dataset_version_ids: Collection[UUID],
    status: str,
) -> int:
    """Link the job to each version it names that is known here; how many were linked."""
    known = await store.known_versions(uow.session, set(dataset_version_ids))
    at = now()
    await store.put_uses(
        uow.session,
        [
            {
                "dataset_version_id": v,
                "job_id": job_id,
                "job_name": job_name,
                "project_id": project_id,
                "job_status": status,
                "updated_at": at,
            }
            for v in sorted(known)
        ],
    )
    return len(known)


async def job_ended(uow: UnitOfWork, job_id: UUID, status: str) -> None:
    await store.set_job_status(uow.session, job_id, status, now())


# The env's DVC remote (the gateway's IntegrationConfig)


async def apply_integration_config(uow: UnitOfWork, change: IntegrationConfigChanged) -> None:
    """Keep the newest config of each env; the next version pushed there uses it. One DVC
    refuses is kept too, and named by the 409 of the next push."""
    await store.put_integration_config(uow.session, change)
