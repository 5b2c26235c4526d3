"""`make bench`: Modelplane's registry beside MLflow's model registry server, measured the same
way in the same run. See bench/README.md."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A `BENCH_*` variable the bench cannot run with; the message names it and says why."""


def _whole_at_least(text: str, least: int) -> bool:
    return text.isascii() and text.isdigit() and int(text) >= least


class _Environment:
    """Reads `BENCH_*` variables, each checked before anything starts."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def number(self, name: str, default: float, *, least: float, above: bool = False) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < least or (above and value == least):
            bound = f"> {least:g}" if above else f">= {least:g}"
            raise ConfigError(f"{name}: expected a number {bound}, got {raw!r}")
        return value

    def integers(self, name: str, default: list[int], *, least: int) -> list[int]:
        raw = self._raw(name)
        if raw is None:
            return default
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts or not all(_whole_at_least(part, least) for part in parts):
            raise ConfigError(
                f"{name}: expected whole numbers >= {least}, separated by commas, got {raw!r}"
            )
        return [int(part) for part in parts]

    def integer(self, name: str, default: int, *, least: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        if not _whole_at_least(raw, least):
            raise ConfigError(f"{name}: expected a whole number >= {least}, got {raw!r}")
        return int(raw)

    def operations(self, name: str) -> list[str]:
        raw = self._raw(name)
        if raw is None:
            return list(OPERATIONS)
        chosen = [op.strip() for op in raw.split(",") if op.strip()]
        unknown = [op for op in chosen if op not in OPERATIONS]
        if unknown or not chosen:
            what = f"unknown operations {unknown}" if unknown else f"no operation in {raw!r}"
            raise ConfigError(f"{name}: {what}; known: {', '.join(OPERATIONS)}")
        return chosen


@dataclass(frozen=True)
class Config:
    seconds: float
    warmup_seconds: float
    clients: list[int]
    seed_models: int
    seed_versions: int
    seed_concurrency: int
    list_sizes: list[int]
    list_samples: int
    mlflow_workers: int
    operations: list[str] = field(default_factory=list)
    datasets_bytes: int = 1024**3  # the mixed files hashed by the datasets section

    @property
    def short(self) -> bool:
        return self.seconds <= 5

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "Config":
        """The run `BENCH_*` asks for; `ConfigError` names the first variable it cannot use."""
        env = _Environment(environ)
        seconds = env.number("BENCH_SECONDS", 20.0, least=0, above=True)
        short = seconds <= 5
        return cls(
            seconds=seconds,
            warmup_seconds=env.number("BENCH_WARMUP_SECONDS", max(1.0, 0.2 * seconds), least=0),
            clients=env.integers("BENCH_CLIENTS", [1, 32], least=1),
            # Short mode seeds 32 models (one per worker at 32 clients) to finish in minutes.
            seed_models=env.integer("BENCH_SEED_MODELS", 32 if short else 100, least=1),
            # A transition cycles through all but the last version, which starts in production.
            seed_versions=env.integer("BENCH_SEED_VERSIONS", 100, least=2),
            seed_concurrency=env.integer("BENCH_SEED_CONCURRENCY", 32, least=1),
            # Keys in the JSON stay "10k" and "1m" whatever sizes are measured (documented).
            # Each size needs a full page of 100 both first and in the middle.
            list_sizes=env.integers("BENCH_LIST_SIZES", [10_000, 1_000_000], least=200),
            list_samples=env.integer("BENCH_LIST_SAMPLES", 50 if short else 200, least=1),
            mlflow_workers=env.integer("BENCH_MLFLOW_WORKERS", 4, least=1),
            operations=env.operations("BENCH_OPERATIONS"),
            datasets_bytes=env.integer("BENCH_DATASETS_BYTES", 1024**3, least=16 * 1024**2),
        )


OPERATIONS = [
    "create_model",
    "create_version",
    "transition",
    "latest_in_stage",
    "get_version",
    "list_versions",
]
