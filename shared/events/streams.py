"""One JetStream stream per producing service, plus the dead-letter stream operators read."""

from nats.js.api import StorageType, StreamConfig

SERVICES = ("registry", "jobs", "serving", "pipelines", "datasets", "gateway")
DEAD_LETTER_STREAM = "DEADLETTER"
DEAD_LETTER_PREFIX = "deadletter"


def stream_name(service: str) -> str:
    return service.upper()


def stream_config(service: str, duplicate_window_seconds: float) -> StreamConfig:
    return StreamConfig(
        name=stream_name(service),
        subjects=[f"{service}.>"],
        storage=StorageType.FILE,
        duplicate_window=duplicate_window_seconds,
    )


def dead_letter_config() -> StreamConfig:
    return StreamConfig(
        name=DEAD_LETTER_STREAM,
        subjects=[f"{DEAD_LETTER_PREFIX}.>"],
        storage=StorageType.FILE,
    )


def dead_letter_subject(consumer: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{consumer}"
