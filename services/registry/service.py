"""The registry's use cases: each runs inside one unit of work, applies the domain's rules, and
records the events its changes cause, so state, audit trail and events commit together."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from services.registry import store
from services.registry.domain import (
    ModelStage,
    VersionState,
    check_deletable,
    plan_transition,
    requires_approval,
)
from services.registry.models import ModelVersion, ModelVersionTransition, RegisteredModel
from shared.db import UnitOfWork, apply_changes
from shared.errors import Conflict, NotFound
from shared.events.registry import (
    ModelDeleted,
    ModelRegistered,
    ModelUpdated,
    ModelVersionCreated,
    ModelVersionDeleted,
    ModelVersionTransitioned,
    ModelVersionUpdated,
)


class DuplicateModelName(Conflict):
    kind = "duplicate-model-name"


class DuplicateVersion(Conflict):
    kind = "duplicate-version"


def model_not_found(model_id: UUID) -> NotFound:
    return NotFound(f"no registered model with id {model_id}", kind="model-not-found")


def version_not_found(what: str) -> NotFound:
    return NotFound(f"no model version {what}", kind="version-not-found")


async def register_model(
    uow: UnitOfWork, *, name: str, project_id: UUID, description: str | None,
    tags: dict[str, str], actor: str,
) -> RegisteredModel:
    model = await store.insert_model(
        uow.session,
        {"id": uuid4(), "name": name, "project_id": project_id, "description": description,
         "tags": tags, "created_by": actor},
    )
    if model is None:
        raise DuplicateModelName(f"project {project_id} already has a model named '{name}'")
    uow.record(
        ModelRegistered(model_id=model.id, name=name, project_id=project_id,
                        description=description, tags=tags, created_by=actor),
        model.id,
    )
    return model


async def update_model(uow: UnitOfWork, model_id: UUID, changes: dict[str, Any]) -> RegisteredModel:
    model = await store.lock_model(uow.session, model_id)
    if model is None:
        raise model_not_found(model_id)
    new_name = changes.get("name")
    if new_name not in (None, model.name) and await store.model_name_taken(
        uow.session, model.project_id, new_name
    ):
        raise DuplicateModelName(f"project {model.project_id} already has a model named '{new_name}'")
    if changes:
        await apply_changes(uow.session, model, changes)
        uow.record(
            ModelUpdated(model_id=model.id, name=model.name, project_id=model.project_id,
                         changes=changes),
            model.id,
        )
    return model


async def delete_model(uow: UnitOfWork, model_id: UUID) -> None:
    model = await store.lock_model(uow.session, model_id)
    if model is None:
        raise model_not_found(model_id)
    deleted_versions = await store.delete_model(uow.session, model_id)
    uow.record(
        ModelDeleted(model_id=model.id, name=model.name, project_id=model.project_id,
                     deleted_versions=deleted_versions),
        model.id,
    )


async def create_version(
    uow: UnitOfWork, model_id: UUID, *, version: str | None, actor: str, **fields: Any
) -> ModelVersion:
    """A new version in stage `none`; labelled 1, 2, 3, ... when no label is given."""
    counter = await store.next_version_number(uow.session, model_id)
    if counter is None:
        raise model_not_found(model_id)
    number, model_name = counter
    values = {"model_id": model_id, "created_by": actor, "stage": ModelStage.NONE.value}
    values.update(fields)
    if "metadata" in values:
        values["meta"] = values.pop("metadata")
    while True:
        label = version if version is not None else str(number)
        created = await store.insert_version(uow.session, {**values, "id": uuid4(), "version": label})
        if created is not None:
            break
        if version is not None:
            raise DuplicateVersion(f"model '{model_name}' already has a version '{version}'")
        number += 1  # an explicit label took this number; the next one is free
    uow.record(
        ModelVersionCreated(
            model_id=model_id, model_name=model_name, version_id=created.id, version=label,
            stage=created.stage, run_id=created.run_id, artifact_uri=created.artifact_uri,
            metrics=created.metrics, created_by=actor,
        ),
        created.id,
    )
    return created


async def update_version(uow: UnitOfWork, version_id: UUID, changes: dict[str, Any]) -> ModelVersion:
    found = await store.lock_version_and_model(uow.session, version_id)
    if found is None:
        raise version_not_found(f"with id {version_id}")
    version, model = found
    if changes:
        columns = {("meta" if k == "metadata" else k): v for k, v in changes.items()}
        await apply_changes(uow.session, version, columns)
        uow.record(
            ModelVersionUpdated(model_id=model.id, model_name=model.name, version_id=version.id,
                                version=version.version, changes=changes),
            version.id,
        )
    return version


async def delete_version(uow: UnitOfWork, version_id: UUID) -> None:
    found = await store.lock_version_and_model(uow.session, version_id)
    if found is None:
        raise version_not_found(f"with id {version_id}")
    version, model = found
    check_deletable(_state(version))
    await store.delete_version(uow.session, version_id)
    uow.record(
        ModelVersionDeleted(model_id=model.id, model_name=model.name, version_id=version.id,
                            version=version.version),
        version.id,
    )


async def transition_stage(
    uow: UnitOfWork, version_id: UUID, *, stage: ModelStage, comment: str | None, actor: str
) -> tuple[ModelVersion, list[ModelVersionTransition]]:
    """Move a version to a stage. Locking the model row serialises every transition of the
    model, so two concurrent promotions cannot both find production empty."""
    found = await store.lock_version_and_model(uow.session, version_id)
    if found is None:
        raise version_not_found(f"with id {version_id}")
    version, model = found
    by_id = {version.id: version}
    current_production = None
    if stage == ModelStage.PRODUCTION:
        serving = await store.latest_in_stage(uow.session, model.id, ModelStage.PRODUCTION)
        if serving is not None:
            by_id[serving.id] = serving
            current_production = _state(serving)
    changes = plan_transition(_state(version), stage, comment, current_production)

    now = datetime.now(UTC)
    for change in changes:
        # Leaving production first keeps the one-production index satisfied at every statement.
        values: dict[str, Any] = {"stage": change.to_stage.value, "updated_at": now}
        if change.version_id == version.id and requires_approval(change.to_stage):
            values.update(approved_by=actor, approved_at=now)
        await apply_changes(uow.session, by_id[change.version_id], values)
    recorded = await store.insert_transitions(
        uow.session,
        [
            {"id": uuid4(), "version_id": c.version_id, "model_id": model.id,
             "from_stage": c.from_stage.value, "to_stage": c.to_stage.value,
             "comment": c.comment, "transitioned_by": actor, "transitioned_at": now}
            for c in changes
        ],
    )
    for c in changes:
        uow.record(
            ModelVersionTransitioned(
                model_id=model.id, model_name=model.name, version_id=c.version_id,
                version=c.version, from_stage=c.from_stage, to_stage=c.to_stage,
                comment=c.comment, actor=actor,
            ),
            c.version_id,
        )
    return version, list(recorded)


def _state(version: ModelVersion) -> VersionState:
    return VersionState(id=version.id, version=version.version, stage=ModelStage(version.stage))
