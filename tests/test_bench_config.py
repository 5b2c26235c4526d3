"""`make bench` reads its `BENCH_*` variables before it starts anything, and refuses one it
cannot run with by name."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench import OPERATIONS, Config, ConfigError


def test_nothing_set_is_the_full_run() -> None:
    config = Config.from_environment({})
    assert (config.seconds, config.warmup_seconds, config.clients) == (20.0, 4.0, [1, 32])
    assert (config.seed_models, config.seed_versions, config.list_samples) == (100, 100, 200)
    assert config.list_sizes == [10_000, 1_000_000]
    assert config.operations == OPERATIONS and not config.short


def test_short_mode_and_lists_as_written() -> None:
    config = Config.from_environment(
        {
            "BENCH_SECONDS": "5",
            "BENCH_CLIENTS": " 4, 8 ",
            "BENCH_OPERATIONS": "transition, get_version",
            "BENCH_LIST_SIZES": "200",
            "BENCH_WARMUP_SECONDS": "0",
        }
    )
    assert config.short and config.seed_models == 32 and config.list_samples == 50
    assert (config.clients, config.list_sizes, config.warmup_seconds) == ([4, 8], [200], 0.0)
    assert config.operations == ["transition", "get_version"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BENCH_SECONDS", "abc", "BENCH_SECONDS: expected a number > 0, got 'abc'"),
        ("BENCH_SECONDS", "0", "BENCH_SECONDS: expected a number > 0"),
        ("BENCH_SECONDS", "nan", "BENCH_SECONDS: expected a number > 0"),
        ("BENCH_WARMUP_SECONDS", "-1", "BENCH_WARMUP_SECONDS: expected a number >= 0"),
        ("BENCH_CLIENTS", "0,32", "BENCH_CLIENTS: expected whole numbers >= 1"),
        ("BENCH_CLIENTS", "1,²", "BENCH_CLIENTS: expected whole numbers >= 1"),
        ("BENCH_SEED_VERSIONS", "1", "BENCH_SEED_VERSIONS: expected a whole number >= 2"),
        ("BENCH_SEED_MODELS", "1.5", "BENCH_SEED_MODELS: expected a whole number >= 1"),
        ("BENCH_LIST_SIZES", "10000,100", "BENCH_LIST_SIZES: expected whole numbers >= 200"),
        ("BENCH_OPERATIONS", "transition,foo", "BENCH_OPERATIONS: unknown operations ['foo']"),
        ("BENCH_OPERATIONS", " , ", "BENCH_OPERATIONS: no operation in"),
    ],
)
def test_a_value_it_cannot_run_with_is_refused_by_name(name, value, message) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_environment({name: value})
    assert str(refused.value).startswith(message)


def test_make_bench_stops_before_starting_anything_and_says_why() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench"],
        check=False,
        env={"BENCH_CLIENTS": "none"},
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert finished.stderr.strip() == (
        "make bench: BENCH_CLIENTS: expected whole numbers >= 1, separated by commas, got 'none'"
    )
    assert finished.stdout == ""
