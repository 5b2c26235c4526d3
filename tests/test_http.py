"""`shared.http`: rows written as the validated model, refused when they do not fit; a 405
that names every method of its path."""

import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field, ValidationError

from shared.http import install_problem_handlers, rows_reply


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
    return {
        "id": uuid.uuid4(),
        "colour": colour,
        "was": "blue",
        "scores": {"f1": 0.25, "auc": 1.0},
        "metadata_": {"seed": 2**70, "nested": [1, "two"]},
        "seen_at": seen_at,
        "note": None,
        "seq": 7,
    }


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
    """A row that does not fit the documented shape is the service's bug, never a reply."""
    with pytest.raises(ValidationError, match="total"):
        rows_reply(Page, {"items": [], "first": None, "total": Decimal("3.5")})


def test_a_reply_keeps_its_status_and_headers():
    reply = rows_reply(Item, row("blue", None), 201, {"Location": "/items/1"})
    assert (reply.status_code, reply.headers["location"]) == (201, "/items/1")
    assert reply.media_type == "application/json"


async def test_a_method_not_allowed_names_every_method_of_the_path():
    """Starlette's 405 names the methods of the first route that matched the path only."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/things")
    async def list_things() -> list[str]:
        return []

    @app.post("/things")
    async def add_thing() -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        reply = await client.options("/things")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "GET, POST"
    assert reply.json()["type"].endswith("/method-not-allowed")
