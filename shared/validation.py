"""Input types that Postgres can store: strings without NUL, JSON without NaN or Infinity.

Postgres refuses a NUL character in text and in JSON, and NaN or Infinity in JSON; a request
carrying one is refused up front (422 naming the field) instead of failing at the database.
"""

import math
from typing import Annotated, Any

from pydantic import AfterValidator

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def refuse_nul(value: str) -> str:
    """The string unchanged unless it has a NUL or a lone surrogate (`"\\ud800"` in JSON),
    which no UTF-8 column or reply can hold."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must not contain a lone surrogate") from None
    return value


def refuse_unstorable_json(value: Any) -> Any:
    """The value unchanged, unless a string in it (key or value) has a NUL or a number is
    not finite; the error names where inside the value."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            try:
                refuse_nul(item)
            except ValueError as refused:
                raise ValueError(f"{where or 'the value'} {refused}") from None
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where or 'the value'} is {item}, not a finite number")
        elif isinstance(item, dict):
            for key, child in item.items():
                try:
                    refuse_nul(str(key))
                except ValueError as refused:
                    raise ValueError(f"a key in {where or 'the value'} {refused}") from None
                stack.append((f"{where}.{key}" if where else str(key), child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", child) for i, child in enumerate(item))
    return value


Text = Annotated[str, AfterValidator(refuse_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(refuse_unstorable_json)]
