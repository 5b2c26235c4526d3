"""The launcher runs whatever the service table lists: a service defined only here is started
in its order, with its replicas on ports of their own, restarted when killed, and stopped."""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deploy.launcher import REPO_ROOT, Platform, PlatformError, RestartPolicy
from shared.local_infra import free_port, tcp_answers
from shared.service_table import TABLE_VARIABLE, ServiceSpec, current_table, dump_table
from tests.dummy_service import FAIL_VARIABLE

DUMMY = "tests.dummy_service"
ALPHA = ServiceSpec("alpha", 8101, ("/api/v1/alpha",), module_name=DUMMY)
OMEGA = ServiceSpec("omega", 8102, ("/api/v1/omega",), start_order=2, module_name=DUMMY)
FAST_RESTART = RestartPolicy(first=0.1, longest=1.0, healthy_after=5.0)


def platform(database_url: str, nats_url: str, tmp_path: Path, **kwargs: object) -> Platform:
    return Platform(
        table=(ALPHA, OMEGA),
        database_url=database_url,
        nats_url=nats_url,
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "logs",
        start_tracking=False,
        restart=FAST_RESTART,
        ready_timeout=20,
        **kwargs,  # type: ignore[arg-type]
    )


async def served(url: str, root: str) -> dict:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"{url}{root}")
    assert reply.status_code == 200
    return reply.json()


async def test_a_service_defined_only_in_a_test_runs_with_its_replicas_in_order(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    async with platform(database_url, nats_url, tmp_path, replicas={"alpha": 2}) as running:
        alpha_urls = running.service_urls("alpha")
        assert len(set(alpha_urls)) == 2
        pids = {(await served(url, "/api/v1/alpha"))["pid"] for url in alpha_urls}
        assert len(pids) == 2 and pids <= set(running.pids.values())
        omega = await served(running.service_url("omega"), "/api/v1/omega")
    # Omega, started second, checked that both alphas answered before it (else it exits).
    assert omega["env"]["MODELPLANE_ALPHA_URL"] == ",".join(alpha_urls)
    assert current_table({TABLE_VARIABLE: omega["env"][TABLE_VARIABLE]}) == (ALPHA, OMEGA)
    assert omega["env"]["MODELPLANE_OMEGA_PORT"] == running.service_url("omega").rsplit(":")[-1]


async def test_a_killed_process_comes_back_on_its_port_while_the_others_serve(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    async with platform(database_url, nats_url, tmp_path, replicas={"alpha": 2}) as running:
        first, second = running.service_urls("alpha")
        killed = (await served(first, "/api/v1/alpha"))["pid"]
        os.kill(killed, signal.SIGKILL)
        for _ in range(5):  # the others answer meanwhile
            await served(second, "/api/v1/alpha")
            await served(running.service_url("omega"), "/api/v1/omega")
        await asyncio.sleep(0.3)
        await running.wait_until_ready("alpha", timeout=20)
        back = (await served(first, "/api/v1/alpha"))["pid"]
        assert back != killed and running.restarts("alpha") == 1
        assert running.restarts("omega") == 0
        pids = set(running.pids.values())
    for pid in pids:  # stop() ended every process
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_service_that_fails_at_start_stops_the_start_with_its_output(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    running = platform(database_url, nats_url, tmp_path, env={FAIL_VARIABLE: "omega"})
    with pytest.raises(PlatformError, match="omega exited with code 3") as failure:
        await running.start()
    assert "refusing to start, as the test asked" in str(failure.value)
    assert running.pids == {} or all(p.poll() is not None for p in _processes(running))


def _processes(running: Platform) -> list[subprocess.Popen]:
    return [r.process for group in running.replicas.values() for r in group if r.process]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://root@127.0.0.1/modelplane", "mysql:// is not a Postgres URL"),
        ("not a url", "is not a URL"),
        ("postgresql://postgres@127.0.0.1:{port}/modelplane", "no Postgres answers at"),
        ("postgresql://postgres@127.0.0.1:5432/modelplane?sslmode=sometimes", "sslmode=sometimes"),
    ],
)
def test_make_up_with_a_bad_database_url_stops_with_one_line_naming_it(
    url: str, said: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "MODELPLANE_DATABASE_URL": url.format(port=free_port()),
        "MODELPLANE_HTTP_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "deploy.launcher"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 1
    assert len(output) == 1, output
    assert "MODELPLANE_DATABASE_URL" in output[0] and said in output[0]


async def test_the_embedded_nats_keeps_its_port_when_killed_and_when_the_platform_restarts(
    database_url: str, tmp_path: Path
) -> None:
    def alone() -> Platform:
        return Platform(
            table=(ALPHA,),
            database_url=database_url,
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            start_tracking=False,
            restart=FAST_RESTART,
        )

    async with alone() as running:
        url, killed = running.nats_url, running.infra_pids["nats"]
        os.kill(killed, signal.SIGKILL)
        for _ in range(100):
            if running.infra_pids["nats"] != killed and tcp_answers("127.0.0.1", port_of(url)):
                break
            await asyncio.sleep(0.1)
        assert running.infra_pids["nats"] != killed
        assert tcp_answers("127.0.0.1", port_of(url))
    async with alone() as again:
        assert again.nats_url == url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_make_up_with_a_nats_url_nothing_answers_stops_with_one_line(
    database_url: str,
) -> None:
    env = {
        **os.environ,
        "MODELPLANE_DATABASE_URL": database_url,
        "MODELPLANE_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "MODELPLANE_HTTP_PORT": str(free_port()),
    }
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.launcher",
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(launcher.communicate(), 60)
    lines = output.decode().strip().splitlines()
    assert launcher.returncode == 1
    assert len(lines) == 1 and "MODELPLANE_NATS_URL: no NATS server answers" in lines[0], lines


async def test_make_up_restarts_a_killed_service_and_ctrl_c_stops_everything(
    database_url: str, nats_url: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        TABLE_VARIABLE: dump_table((ALPHA,)),
        ALPHA.port_variable: str(port),
        "MODELPLANE_DATABASE_URL": database_url,
        "MODELPLANE_NATS_URL": nats_url,
        "MODELPLANE_MLFLOW_TRACKING_URI": "http://mlflow.example.internal:5000",
    }
    launcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deploy.launcher",
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert launcher.stdout is not None
    said: list[str] = []
    up = asyncio.Event()

    async def read() -> None:
        assert launcher.stdout is not None
        async for line in launcher.stdout:
            said.append(line.decode())
            if "Modelplane is up." in said[-1]:
                up.set()

    reading = asyncio.create_task(read())
    try:
        await asyncio.wait_for(up.wait(), 60)
        url = f"http://127.0.0.1:{port}"
        killed = (await served(url, "/api/v1/alpha"))["pid"]
        os.kill(killed, signal.SIGKILL)
        back = killed
        for _ in range(200):
            await asyncio.sleep(0.1)
            with contextlib.suppress(httpx.HTTPError):
                if (back := (await served(url, "/api/v1/alpha"))["pid"]) != killed:
                    break
        assert back != killed
        launcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(launcher.wait(), 30) == 0
    finally:
        if launcher.returncode is None:
            launcher.kill()
        await reading
    assert any("alpha exited with code -9" in line for line in said), said
    with pytest.raises(ProcessLookupError):
        os.kill(back, 0)
