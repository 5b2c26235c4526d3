"""Event latency: a core NATS subscription on `registry.>` in a process of its own, as a
consuming service would be. Latency = receive wall time - the CloudEvent's `time` (stamped as
the outbox rows are written, just before COMMIT; same machine clock).

In the load generator's own event loop the subscriber's receive waited behind 32 clients'
replies, which measured the load generator, not the platform. It keeps its samples until the
window is over: a line written per event woke the load generator a thousand times a second.

`python -m bench.events <nats url>` prints `ready`; once stdin closes, `<received> <latency
ms>` per `model_version.created` event it received.
"""

import asyncio
import json
import sys
import time
from datetime import datetime
from typing import Self

import nats
import uvloop


class EventLatency:
    """Runs the subscriber process for the length of a `with` block and keeps its samples."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.samples: list[tuple[float, float]] = []  # (received wall time, latency ms)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.events",
            self.nats_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        ready = await asyncio.wait_for(self._process.stdout.readline(), timeout=30)
        if ready.strip() != b"ready":
            raise RuntimeError(f"event subscriber did not start: {ready!r}")
        self._reader = asyncio.create_task(self._read(self._process.stdout))
        return self

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        async for line in stdout:
            received, latency = line.split()
            self.samples.append((float(received), float(latency)))

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._process is not None and self._process.stdin is not None
        await asyncio.sleep(0.5)  # the last events of the window
        self._process.stdin.close()
        await self._process.wait()
        if self._reader is not None:
            await self._reader

    def in_window(self, start: float, end: float) -> list[float]:
        return [lat for received, lat in self.samples if start <= received <= end + 0.5]


async def subscribe(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    samples: list[tuple[float, float]] = []

    async def on_message(msg) -> None:
        received = time.time()
        if not msg.subject.endswith("model_version.created"):
            return
        try:
            sent = datetime.fromisoformat(json.loads(msg.data)["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            return
        samples.append((received, (received - sent) * 1000))

    await nc.subscribe("registry.>", cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    # Until the bench closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await nc.drain()
    sys.stdout.writelines(f"{received:.6f} {latency:.3f}\n" for received, latency in samples)


if __name__ == "__main__":
    uvloop.run(subscribe(sys.argv[1]))
