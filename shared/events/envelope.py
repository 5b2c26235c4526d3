"""CloudEvents 1.0 in structured JSON mode, with Modelplane's actor and correlation id extensions.

Subjects are `<service>.<aggregate>.<event>`; the CloudEvents `type` is
`io.modelplane.<subject>.v<version>`. Contracts only grow: a breaking change is a new version.
"""

import builtins
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"
T = TypeVar("T", bound="EventData")
TYPE_PREFIX = "io.modelplane."


def event_type(subject: str, version: int) -> str:
    return f"{TYPE_PREFIX}{subject}.v{version}"


class EventData(BaseModel):
    """The `data` of one kind of event. Subclasses name their subject and contract version."""

    model_config = ConfigDict(frozen=True)

    subject: ClassVar[str]
    contract_version: ClassVar[int] = 1

    @classmethod
    def type(cls) -> str:
        return event_type(cls.subject, cls.contract_version)


class CloudEvent(BaseModel):
    specversion: str = SPEC_VERSION
    id: UUID = Field(default_factory=uuid4)
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    # Extension attributes (CloudEvents names: lower-case letters and digits only).
    actor: str | None = None
    correlationid: str | None = None

    @classmethod
    def wrap(
        cls,
        data: EventData,
        *,
        service: str,
        aggregate_id: UUID | str | None,
        actor: str | None = None,
        correlation_id: str | None = None,
    ) -> Self:
        return cls(
            source=f"/modelplane/{service}",
            type=data.type(),
            subject=None if aggregate_id is None else str(aggregate_id),
            data=data.model_dump(mode="json"),
            actor=actor,
            correlationid=correlation_id,
        )

    @property
    def nats_subject(self) -> str:
        """`io.modelplane.registry.model.registered.v1` -> `registry.model.registered`."""
        return self.type.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]

    def to_json(self) -> bytes:
        # pydantic's serializer, not orjson: it writes integers of any size.
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        return cls.model_validate_json(raw)

    def parse_data(self, contract: builtins.type[T]) -> T:
        return contract.model_validate(self.data)
