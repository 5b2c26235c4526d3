"""`make bench`: Modelplane's registry beside MLflow's model registry server, measured the same
way in the same run. See bench/README.md."""

import os
from dataclasses import dataclass, field


def _int_list(value: str) -> list[int]:
    return [int(part) for part in value.replace(" ", "").split(",") if part]


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

    @property
    def short(self) -> bool:
        return self.seconds <= 5

    @classmethod
    def from_environment(cls) -> "Config":
        env = os.environ.get
        seconds = float(env("BENCH_SECONDS") or 20)
        short = seconds <= 5
        clients = _int_list(env("BENCH_CLIENTS") or "1,32")
        return cls(
            seconds=seconds,
            warmup_seconds=float(env("BENCH_WARMUP_SECONDS") or max(1.0, 0.2 * seconds)),
            clients=clients,
            # Short mode seeds 32 models (one per worker at 32 clients) to finish in minutes.
            seed_models=int(env("BENCH_SEED_MODELS") or (32 if short else 100)),
            seed_versions=int(env("BENCH_SEED_VERSIONS") or 100),
            seed_concurrency=int(env("BENCH_SEED_CONCURRENCY") or 32),
            # Keys in the JSON stay "10k" and "1m" whatever sizes are measured (documented).
            list_sizes=_int_list(env("BENCH_LIST_SIZES") or "10000,1000000"),
            list_samples=int(env("BENCH_LIST_SAMPLES") or (50 if short else 200)),
            mlflow_workers=int(env("BENCH_MLFLOW_WORKERS") or 4),
            operations=[
                op for op in (env("BENCH_OPERATIONS") or ",".join(OPERATIONS)).split(",") if op
            ],
        )


OPERATIONS = [
    "create_model",
    "create_version",
    "transition",
    "latest_in_stage",
    "get_version",
    "list_versions",
]
