"""Events published by the gateway on stream GATEWAY (subjects `gateway.>`)."""

from datetime import datetime
from typing import Any
from uuid import UUID

from shared.events.envelope import EventData


class ProjectCreated(EventData):
    subject = "gateway.project.created"
    project_id: UUID
    name: str
    description: str | None
    created_by: str


class IntegrationConfigChanged(EventData):
    """An admin set which backend serves a concern in an env. `changed_at` orders the changes
    of one (env, concern): a consumer keeps the newest and ignores one that arrives late."""

    subject = "gateway.integration_config.changed"
    env: str
    concern: str
    backend: str
    settings: dict[str, Any]
    changed_by: str
    changed_at: datetime
