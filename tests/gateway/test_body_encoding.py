"""A body that is not JSON in UTF-8 (a byte-order mark, UTF-16, UTF-32, Latin-1) is refused
with 415 on every service's paths, before anything reads or forwards it (issue 33: the
gateway and the registry once read one body two ways)."""

import codecs

import httpx
import pytest

from shared.errors import PROBLEM_BASE
from shared.service_table import backends
from tests.gateway.conftest import ADMIN, FakeRegistry


@pytest.mark.parametrize("root", [root for spec in backends() for root in spec.path_roots])
@pytest.mark.parametrize(
    "encode",
    [
        lambda t: codecs.BOM_UTF8 + t.encode(),
        lambda t: t.encode("utf-16"),
        lambda t: t.encode("utf-32"),
        lambda t: t.encode("latin-1"),
    ],
    ids=["utf-8-bom", "utf-16", "utf-32", "latin-1"],
)
async def test_a_body_not_in_utf8_is_refused_on_every_services_paths(
    client: httpx.AsyncClient, registry: FakeRegistry, root: str, encode
) -> None:
    body = encode('{"name": "é", "stage": "production"}')
    for method in ("POST", "PATCH", "PUT"):
        reply = await client.request(
            method, f"{root}/x", content=body, headers={**ADMIN, "Content-Type": "application/json"}
        )
        assert reply.status_code == 415, (method, root, reply.text)
        assert reply.json()["type"] == PROBLEM_BASE + "unsupported-encoding"
    assert registry.requests == []
