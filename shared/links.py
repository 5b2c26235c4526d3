"""OpenAPI links: which operations a reply's ids feed, for clients and stateful API tests.

A link names its target by `operationRef` (a JSON pointer to the public path and method), so it
holds in the gateway's merged document as in the service's own.
"""

from typing import Any


def link(
    path: str, method: str, *, body: dict[str, str] | None = None, **parameters: str
) -> dict[str, Any]:
    """A link to `method path`, its parameters (and body fields) filled from runtime
    expressions such as `$response.body#/id`."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    found: dict[str, Any] = {"operationRef": f"#/paths/{pointer}/{method.lower()}"}
    if parameters:
        found["parameters"] = parameters
    if body:
        found["requestBody"] = body
    return found


def links(status: int, **named: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses` entry giving its `status` reply these links, by name."""
    return {status: {"links": named}}
