"""The memory the bench reports under load: the peak RSS of each side's process trees, sampled
without reading every process on the machine at each sample (the sampler shares the load
generator's event loop, and each sample holds up every client)."""

import asyncio
import subprocess
import sys

import psutil

from bench import memory
from bench.memory import PeakSampler

# A server's worker: it takes 64 MiB when told, says so, and exits when told.
WORKER = """
import sys
sys.stdin.readline()
ballast = bytearray(64 * 1024 * 1024)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1
print("grown", flush=True)
sys.stdin.readline()
"""
# Its server: the worker is its child, on the server's own stdin and stdout.
SERVER = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {WORKER!r}])"


async def test_the_peak_counts_a_child_that_grows_while_the_load_runs(monkeypatch) -> None:
    walks = []
    walk = memory.process_trees
    monkeypatch.setattr(memory, "process_trees", lambda pids: walks.append(1) or walk(pids))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(10):
            while not psutil.Process(server.pid).children():
                await asyncio.sleep(0.01)
            idle = memory.tree_rss_mib([server.pid])
            async with PeakSampler(lambda: [server.pid], interval=0.01) as sampler:
                server.stdin.write(b"\n")
                assert await server.stdout.readline() == b"grown\n"
                await asyncio.sleep(0.1)  # samples while the worker holds its 64 MiB
                server.stdin.write(b"\n")
                await server.wait()  # the worker gone: the sampler skips it
        assert sampler.peak >= idle + 60
        assert len(walks) == 2  # for `idle`, and the sampler's one as it started
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
