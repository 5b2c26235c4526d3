"""The datasets service's HTTP routes: parse, check the caller's role in the dataset's project,
call a use case or a query, shape the reply."""

import asyncio
import os
import shutil
import tempfile
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse

from services.datasets import service, store, uploads
from services.datasets.domain import DatasetInvalid, IllegalVersionTransition
from services.datasets.errors import (
    DatasetNameTaken,
    DatasetNotFound,
    DatasetRemoteInvalid,
    DatasetVersionExists,
    DatasetVersionNotFound,
    SourceUnreadable,
    UploadInvalid,
    UploadTooLarge,
    VersionUnreadable,
)
from services.datasets.integrations.dvc import dvc_file, remote_config
from services.datasets.models import DatasetRecord
from services.datasets.schemas import (
    DatasetCreate,
    DatasetOut,
    DatasetPage,
    DiffOut,
    JobUsePage,
    LineageOut,
    VersionCreate,
    VersionOut,
    VersionPage,
)
from services.datasets.service import Storage
from services.datasets.settings import DatasetsSettings
from shared.auth import Caller, Role
from shared.dependencies import Actor, Limit, Offset, Runtime, Who
from shared.errors import Forbidden, InvalidInput, Problem, Unauthorized, problem_responses
from shared.links import link, links
from shared.projects import ProjectDirectory, UnknownProject
from shared.validation import Text

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

_DATASET = "/api/v1/datasets/{dataset_id}"
_VERSION = "/api/v1/datasets/versions/{version_id}"
DATASET_LINKS = links(
    201,
    GetDataset=link(_DATASET, "get", dataset_id="$response.body#/id"),
    ListVersions=link(f"{_DATASET}/versions", "get", dataset_id="$response.body#/id"),
    CreateVersion=link(f"{_DATASET}/versions", "post", dataset_id="$response.body#/id"),
)
VERSION_LINKS = links(
    201,
    **{
        name: link(f"{_VERSION}{tail}", method, version_id="$response.body#/id")
        for name, tail, method in (
            ("GetVersion", "", "get"),
            ("GetLineage", "/lineage", "get"),
            ("GetDiff", "/diff", "get"),
            ("GetFiles", "/files", "get"),
            ("ListJobs", "/jobs", "get"),
            ("VerifyVersion", "/verify", "post"),
            ("ActivateVersion", "/activate", "post"),
        )
    },
)


async def _storage(request: Request) -> Storage:
    return request.app.state.storage


async def _settings(request: Request) -> DatasetsSettings:
    return request.app.state.settings


async def _projects(request: Request) -> ProjectDirectory:
    return request.app.state.projects


Remotes = Annotated[Storage, Depends(_storage)]
Settings = Annotated[DatasetsSettings, Depends(_settings)]
Projects = Annotated[ProjectDirectory, Depends(_projects)]


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a route may give: bad input, no valid credential from the gateway, a
    role the caller lacks, and `problems`."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, *problems)


def _allow(caller: Caller, dataset: DatasetRecord, role: Role) -> None:
    caller.require(dataset.project_id, role)


async def _dataset(rt, dataset_id: UUID, caller: Caller, role: Role) -> DatasetRecord:
    async with rt.sessionmaker() as session:
        dataset = await service.require_dataset(session, dataset_id)
    _allow(caller, dataset, role)
    return dataset


async def _version(rt, version_id: UUID, caller: Caller, role: Role):
    async with rt.sessionmaker() as session:
        version, dataset = await service.require_version(session, version_id)
    _allow(caller, dataset, role)
    return version, dataset


# Versions by id (before `/{dataset_id}`, so `versions` is never taken for a dataset id)


@router.get(
    "/versions/{version_id}", response_model=VersionOut, responses=answers(DatasetVersionNotFound)
)
async def get_version(version_id: UUID, rt: Runtime, caller: Who):
    version, _ = await _version(rt, version_id, caller, Role.VIEWER)
    return version


@router.get(
    "/versions/{version_id}/lineage",
    response_model=LineageOut,
    responses=answers(DatasetVersionNotFound),
)
async def get_lineage(version_id: UUID, rt: Runtime, caller: Who):
    """The dataset's version tree, and the path from its root to this version."""
    version, _ = await _version(rt, version_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        return await service.lineage(session, version)


@router.get(
    "/versions/{version_id}/diff",
    response_model=DiffOut,
    responses=answers(DatasetVersionNotFound, VersionUnreadable),
)
async def get_diff(
    version_id: UUID, rt: Runtime, caller: Who, remotes: Remotes, against: UUID | None = None
):
    """What changed from `against` (by default the parent, as recorded at creation)."""
    version, _ = await _version(rt, version_id, caller, Role.VIEWER)
    if against is None:
        return {
            "version": version.id,
            "against": version.parent_id,
            "summary": version.diff_summary,
        }
    other, _ = await _version(rt, against, caller, Role.VIEWER)
    return {
        "version": version.id,
        "against": other.id,
        "summary": await service.diff_between(rt, remotes, version, other),
    }


@router.get(
    "/versions/{version_id}/dvc-file",
    response_class=PlainTextResponse,
    responses=answers(DatasetVersionNotFound, VersionUnreadable),
)
async def get_dvc_file(version_id: UUID, rt: Runtime, caller: Who, remotes: Remotes):
    """The `.dvc` file `dvc pull` restores the version with, into a folder named as the dataset."""
    version, dataset = await _version(rt, version_id, caller, Role.VIEWER)
    remote = await service.version_remote(rt, remotes, version)
    manifest = await service.from_remote(remote.manifest, version.version_id)
    text = dvc_file(manifest, dataset.name, remote.url)
    return PlainTextResponse(
        text,
        media_type="application/yaml",
        headers={"Content-Disposition": f'attachment; filename="{dataset.name}.dvc"'},
    )


@router.get(
    "/versions/{version_id}/dvc-config",
    response_class=PlainTextResponse,
    responses=answers(DatasetVersionNotFound, DatasetRemoteInvalid),
)
async def get_dvc_config(version_id: UUID, rt: Runtime, caller: Who, remotes: Remotes):
    """The `.dvc/config` naming the version's remote as the default (its options, credentials
    left out), so `dvc pull` of the version's `.dvc` file finds the data."""
    version, _ = await _version(rt, version_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        choice = await remotes.choice(session)
    shown = choice.shown() if choice is not None and choice.holds(version.storage_uri) else {}
    return PlainTextResponse(remote_config(version.storage_uri, shown), media_type="text/plain")


@router.get(
    "/versions/{version_id}/files", responses=answers(DatasetVersionNotFound, VersionUnreadable)
)
async def download_files(
    version_id: UUID,
    rt: Runtime,
    caller: Who,
    remotes: Remotes,
    settings: Settings,
    cleanup: BackgroundTasks,
):
    """The version's files as a tar archive, read from its DVC remote."""
    version, dataset = await _version(rt, version_id, caller, Role.VIEWER)
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    remote = await service.version_remote(rt, remotes, version)
    descriptor, archive = tempfile.mkstemp(dir=settings.upload_dir, suffix=".tar")

    def write() -> None:
        with open(descriptor, "wb") as out:
            remote.write_tar(version.version_id, out, dataset.name)

    try:
        await service.from_remote(write)
    except BaseException:
        os.unlink(archive)
        raise
    cleanup.add_task(os.unlink, archive)
    return FileResponse(
        archive,
        media_type="application/x-tar",
        filename=f"{dataset.name}-{version.version_id[:12]}.tar",
    )


@router.get(
    "/versions/{version_id}/jobs",
    response_model=JobUsePage,
    responses=answers(DatasetVersionNotFound),
)
async def list_jobs(version_id: UUID, rt: Runtime, caller: Who):
    """The jobs that named the version in their `dataset_version_ids`, as the jobs service said."""
    await _version(rt, version_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        items = await store.uses_of(session, version_id)
    return {"items": items, "total": len(items)}


@router.post(
    "/versions/{version_id}/verify",
    response_model=VersionOut,
    responses=answers(DatasetVersionNotFound, IllegalVersionTransition),
)
async def verify(version_id: UUID, rt: Runtime, caller: Who, remotes: Remotes):
    """Recompute every object's hash from the remote: verified, or failed naming the files."""
    await _version(rt, version_id, caller, Role.EDITOR)
    return await service.verify_version(rt, remotes, version_id)


@router.post(
    "/versions/{version_id}/activate",
    response_model=VersionOut,
    responses=answers(DatasetVersionNotFound, IllegalVersionTransition),
)
async def activate(version_id: UUID, rt: Runtime, caller: Who):
    await _version(rt, version_id, caller, Role.EDITOR)
    async with rt.uow() as uow:
        return await service.activate_version(uow, version_id)


# Datasets


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    responses={**answers(DatasetInvalid, DatasetNameTaken, UnknownProject), **DATASET_LINKS},
)
async def create_dataset(
    body: DatasetCreate,
    rt: Runtime,
    caller: Who,
    who: Actor,
    projects: Projects,
    response: Response,
):
    caller.require(body.project_id, Role.EDITOR)
    await projects.require(body.project_id, caller)
    async with rt.uow() as uow:
        dataset = await service.create_dataset(
            uow,
            project_id=body.project_id,
            name=body.name,
            description=body.description,
            tags=body.tags,
            actor=who,
        )
    response.headers["Location"] = f"{router.prefix}/{dataset.id}"
    return dataset


@router.get("", response_model=DatasetPage, responses=answers())
async def list_datasets(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    name: Annotated[
        Text | None, Query(description="Case-insensitive substring of the name")
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    scope = caller.scope(project_id)
    if scope is not None and not scope:
        return {"items": [], "total": 0}
    async with rt.sessionmaker() as session:
        items, total = await store.list_datasets(session, scope, limit, offset, name)
    return {"items": items, "total": total}


@router.get("/{dataset_id}", response_model=DatasetOut, responses=answers(DatasetNotFound))
async def get_dataset(dataset_id: UUID, rt: Runtime, caller: Who):
    return await _dataset(rt, dataset_id, caller, Role.VIEWER)


@router.get(
    "/{dataset_id}/versions", response_model=VersionPage, responses=answers(DatasetNotFound)
)
async def list_versions(
    dataset_id: UUID, rt: Runtime, caller: Who, limit: Limit = 100, offset: Offset = 0
):
    await _dataset(rt, dataset_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        items, total = await store.versions_of(session, dataset_id, limit, offset)
    return {"items": items, "total": total}


@router.post(
    "/{dataset_id}/versions",
    status_code=201,
    response_model=VersionOut,
    responses={
        **answers(
            DatasetNotFound,
            DatasetInvalid,
            DatasetVersionExists,
            SourceUnreadable,
            DatasetRemoteInvalid,
        ),
        **VERSION_LINKS,
    },
)
async def create_version(
    dataset_id: UUID,
    body: VersionCreate,
    rt: Runtime,
    caller: Who,
    who: Actor,
    remotes: Remotes,
    settings: Settings,
    response: Response,
):
    """A version from a directory under one of the service's source roots."""
    await _dataset(rt, dataset_id, caller, Role.EDITOR)
    source = service.source_directory(body.source_path, settings.source_roots)
    version = await service.create_version(
        rt,
        remotes,
        dataset_id,
        source,
        parent_asked=body.parent_version_id,
        version_tag=body.version_tag,
        actor=who,
    )
    response.headers["Location"] = f"{router.prefix}/versions/{version.id}"
    return version


@router.post(
    "/{dataset_id}/versions/upload",
    status_code=201,
    response_model=VersionOut,
    responses=answers(
        DatasetNotFound,
        DatasetInvalid,
        DatasetVersionExists,
        UploadInvalid,
        UploadTooLarge,
        DatasetRemoteInvalid,
    ),
)
async def upload_version(
    dataset_id: UUID,
    request: Request,
    rt: Runtime,
    caller: Who,
    who: Actor,
    remotes: Remotes,
    settings: Settings,
    response: Response,
):
    """A version from files uploaded as multipart/form-data (each part's file name is its path in
    the version; fields `parent_version_id` and `version_tag` may come too), streamed to disk."""
    await _dataset(rt, dataset_id, caller, Role.EDITOR)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.datasets_upload_max_bytes:
        raise UploadTooLarge(
            f"the upload is larger than {settings.datasets_upload_max_bytes} bytes",
            max_bytes=settings.datasets_upload_max_bytes,
        )
    target = service.upload_target(settings.upload_dir)
    try:
        fields = await uploads.receive(
            request.headers.get("content-type", ""),
            request.stream(),
            target,
            settings.datasets_upload_max_bytes,
        )
        version = await service.create_version(
            rt,
            remotes,
            dataset_id,
            target,
            parent_asked=fields.get("parent_version_id") or None,
            version_tag=fields.get("version_tag") or None,
            actor=who,
        )
    finally:
        await asyncio.to_thread(shutil.rmtree, target, True)
    response.headers["Location"] = f"{router.prefix}/versions/{version.id}"
    return version
