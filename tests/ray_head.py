"""A Ray head for a test module: its own, stopped after, or the one that
MODELPLANE_TEST_RAY_DASHBOARD_URL and MODELPLANE_TEST_RAY_SERVE_URL name (as the tests' Postgres
and NATS may be named)."""

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.serving.integrations.ray_head import LocalRayHead


@dataclass(frozen=True)
class RunningHead:
    dashboard_url: str
    proxy_url: str


@contextlib.contextmanager
def ray_head(name: str, **options) -> Iterator[LocalRayHead | RunningHead]:
    """`options` are LocalRayHead's (one CPU to schedule by default)."""
    if url := os.environ.get("MODELPLANE_TEST_RAY_DASHBOARD_URL"):
        yield RunningHead(url, os.environ["MODELPLANE_TEST_RAY_SERVE_URL"])
        return
    head = LocalRayHead(
        temp_dir=Path(f"/tmp/ray-{name}-{uuid.uuid4().hex[:6]}"), **{"num_cpus": 1, **options}
    )
    head.start(timeout=300, attempts=5)
    try:
        yield head
    finally:
        head.stop()
        shutil.rmtree(head.temp_dir, ignore_errors=True)
