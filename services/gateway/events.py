"""Events the gateway publishes on stream GATEWAY (subjects `gateway.>`).

Event contracts belong in `shared/events/gateway.py`; this module stands in until they move.
"""

from uuid import UUID

from shared.events import EventData


class ProjectCreated(EventData):
    subject = "gateway.project.created"
    project_id: UUID
    name: str
    description: str | None
    created_by: str
