"""`shared.http.rows_reply`: rows written as the validated model would be, byte for byte."""

import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import AliasChoices, BaseModel, Field, computed_field
from pydantic_core import PydanticSerializationError

from shared.http import rows_reply


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Item(BaseModel):
    id: uuid.UUID
    colour: Colour
    was: Colour  # an enum used twice: the schema refers to it
    scores: dict[str, float]
    meta: dict[str, object] = Field(validation_alias="metadata_")
    seen_at: datetime | None
    note: str | None = None


class Page(BaseModel):
    items: list[Item]
    first: Item | None
    total: int


def row(colour: str, seen_at: datetime | None) -> dict:
    return {"id": uuid.uuid4(), "colour": colour, "was": "blue", "scores": {"f1": 0.25, "auc": 1.0},
            "metadata_": {"seed": 2**70, "nested": [1, "two"]}, "seen_at": seen_at,
            "note": None, "seq": 7}  # fmt: skip


@pytest.mark.filterwarnings("error")
def test_rows_come_out_as_the_validated_model_would():
    rows = [
        row("red", datetime(2026, 12, 3, 19, 15, 17, 123456, UTC)),
        row("blue", datetime(2026, 12, 3, 19, 15, 17, tzinfo=UTC)),
        row("red", None),
    ]
    body = {"items": rows, "first": rows[0], "total": 3}
    expected = Page.model_validate(body).model_dump_json().encode()
    assert rows_reply(Page, body).body == expected
    assert rows_reply(Page, {"items": [], "first": None, "total": 0}).body == (
        b'{"items":[],"first":null,"total":0}'
    )


def test_a_value_not_of_its_fields_type_raises_rather_than_leave():
    """Validation would have made an int of `numeric`'s Decimal; the serializer would write a
    string, which the documented shape does not allow."""
    with pytest.raises(PydanticSerializationError, match="Expected `int`"):
        rows_reply(Page, {"items": [], "first": None, "total": Decimal(3)})


def test_a_reply_keeps_its_status_and_headers():
    reply = rows_reply(Item, row("blue", None), 201, {"Location": "/items/1"})
    assert (reply.status_code, reply.headers["location"]) == (201, "/items/1")
    assert reply.media_type == "application/json"


class Computed(BaseModel):
    n: int

    @computed_field
    @property
    def double(self) -> int:
        return 2 * self.n


class Choices(BaseModel):
    n: int = Field(validation_alias=AliasChoices("n", "count"))


@pytest.mark.parametrize("shape", [Computed, Choices])
def test_a_shape_a_row_cannot_fill_is_refused(shape):
    with pytest.raises(TypeError, match=shape.__name__):
        rows_reply(shape, {"n": 1})
