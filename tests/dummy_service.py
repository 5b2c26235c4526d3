"""A service that exists only in tests: run by the launcher from a table entry, it answers its
readiness path and path roots, and tells what the launcher gave it."""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shared.service_table import ServiceSpec, current_table, parse_urls

FAIL_VARIABLE = "DUMMY_FAIL_AT_START"


def own_spec() -> ServiceSpec:
    """The entry whose port the launcher set for this process."""
    for spec in current_table():
        if spec.module == __spec__.name and spec.port_variable in os.environ:
            return spec
    raise SystemExit("no table entry names this process")


def check_started_after(spec: ServiceSpec) -> None:
    """Every service of an earlier start order answers already, as the table promises."""
    for other in current_table():
        if other.start_order < spec.start_order and other.forwarded:
            for url in parse_urls(os.environ[other.url_variable]):
                with urllib.request.urlopen(url + other.readiness_path, timeout=2) as reply:
                    assert reply.status == 200


def main() -> None:
    spec = own_spec()
    if os.environ.get(FAIL_VARIABLE) == spec.name:
        print(f"{spec.name}: refusing to start, as the test asked", flush=True)
        sys.exit(3)
    check_started_after(spec)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == spec.readiness_path:
                body = {"status": "ready"}
            elif self.path == "/openapi.json":  # what the gateway merges into its document
                operation = {
                    "operationId": f"read_{spec.name}",
                    "responses": {"200": {"description": "what it was given"}},
                }
                body = {
                    "openapi": "3.1.0",
                    "info": {"title": spec.name, "version": "1"},
                    "paths": {root: {"get": operation} for root in spec.path_roots},
                }
            elif any(self.path.startswith(root) for root in spec.path_roots):
                body = {
                    "service": spec.name,
                    "pid": os.getpid(),
                    "env": {k: v for k, v in os.environ.items() if k.startswith("MODELPLANE_")},
                }
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    host = os.environ[spec.host_variable]
    server = ThreadingHTTPServer((host, int(os.environ[spec.port_variable])), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
