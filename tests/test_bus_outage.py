"""A 10 s NATS outage under write load: the registry keeps taking writes through its outbox,
stays ready (degraded) throughout, and publishes every event once the bus is back."""

import asyncio
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from sqlalchemy import func, select

from services.registry.app import create_app
from services.registry.settings import RegistrySettings
from shared.events.registry import ModelVersionCreated
from shared.local_infra import (
    create_database,
    drop_database,
    free_port,
    nats_server_binary,
    stop_process,
    tcp_answers,
)
from tests.credentials import known_project
from tests.registry.conftest import client_of

OUTAGE_SECONDS = 10.0
WRITERS = 4


class PrivateNats:
    """A nats-server of this test's own, stopped and started again on the same port and
    storage, as a restarted or briefly partitioned bus would be."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(nats_server_binary()),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.data_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not tcp_answers("127.0.0.1", self.port, timeout=0.2):
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    async def versions_published(self) -> int:
        """How many ModelVersionCreated events the registry's stream holds."""
        nc = await nats.connect(self.url)
        try:
            subject = ModelVersionCreated.subject
            info = await nc.jetstream().stream_info("REGISTRY", subjects_filter=subject)
            return (info.state.subjects or {}).get(subject, 0)
        finally:
            await nc.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_database(database_server_url: str) -> AsyncIterator[str]:
    """A database of its own: no other registry's relay may publish this one's outbox."""
    name = f"modelplane_outage_{secrets.token_hex(4)}"
    url = await create_database(database_server_url, name)
    try:
        yield url
    finally:
        await drop_database(database_server_url, name)


async def test_writes_go_on_through_a_bus_outage_and_are_published_after(
    bus: PrivateNats, own_database: str
) -> None:
    settings = RegistrySettings(database_url=own_database, nats_url=bus.url, relay_poll_seconds=0.2)
    app = create_app(settings)
    runtime = app.state.runtime
    async with app.router.lifespan_context(app), client_of(app) as client:
        body = {"name": "outage", "project_id": known_project(app)}
        model = (await client.post("/models", json=body)).json()
        statuses: list[int] = []
        readiness: list[tuple[int, dict]] = []
        stop = asyncio.Event()

        async def write() -> None:
            while not stop.is_set():
                reply = await client.post(f"/models/{model['id']}/versions", json={})
                statuses.append(reply.status_code)
                await asyncio.sleep(0.02)

        async def probe() -> None:
            async with plain_client(app) as plain:
                while not stop.is_set():
                    reply = await plain.get("/readyz")
                    readiness.append((reply.status_code, reply.json()))
                    await asyncio.sleep(0.25)

        tasks = [asyncio.create_task(write()) for _ in range(WRITERS)]
        tasks.append(asyncio.create_task(probe()))
        await asyncio.sleep(1)
        bus.stop()
        await asyncio.sleep(OUTAGE_SECONDS)
        during = len(statuses)
        bus.start()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*tasks)

        assert statuses and set(statuses) == {201}, sorted(set(statuses))
        assert during > 20  # writes went on while the bus was away
        assert all(status == 200 and body["ready"] for status, body in readiness), readiness
        assert any(body["degraded"] and not body["checks"]["nats"] for _, body in readiness)

        # Once back, the relay publishes the outbox empty, and every version's event is on
        # the bus exactly once.
        outbox = runtime.outbox
        deadline = time.monotonic() + 30
        while True:
            async with runtime.engine.connect() as conn:
                left = (await conn.execute(select(func.count()).select_from(outbox))).scalar_one()
            if left == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert left == 0
        async with plain_client(app) as plain:
            ready = (await plain.get("/readyz")).json()
        assert (ready["status"], ready["degraded"]) == ("ready", False)

    assert await bus.versions_published() == len(statuses)


def plain_client(app) -> httpx.AsyncClient:
    """The service's own routes (health), outside its API."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")
