"""Events published by the gateway on stream GATEWAY (subjects `gateway.>`)."""

from uuid import UUID

from shared.events.envelope import EventData


class ProjectCreated(EventData):
    subject = "gateway.project.created"
    project_id: UUID
    name: str
    description: str | None
    created_by: str
