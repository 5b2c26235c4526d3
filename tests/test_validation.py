"""`shared.validation`: strings and JSON that Postgres cannot store are refused, naming where."""

import pytest
from pydantic import BaseModel, ValidationError

from shared.validation import JsonObject, Text


class Body(BaseModel):
    name: Text
    settings: JsonObject = {}


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
def test_a_string_postgres_cannot_store_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Body(name=bad)
    assert refused.value.errors()[0]["loc"] == ("name",)
    with pytest.raises(ValidationError, match=r"nested\[1\] must not contain"):
        Body(name="ok", settings={"nested": ["fine", bad]})
    with pytest.raises(ValidationError, match="a key in settings"):
        Body(name="ok", settings={"settings": {bad: 1}})


def test_storable_text_and_json_pass_unchanged() -> None:
    body = Body(name="café 🚀", settings={"pair": "\U0001f680", "n": [1.5, None]})
    assert body.name == "café 🚀"
    assert body.settings == {"pair": "\U0001f680", "n": [1.5, None]}
