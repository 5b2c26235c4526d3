"""`python -m services.gateway` serves the public API;
`python -m services.gateway create-token --subject NAME --role ROLE` prints a new token."""

import argparse
import asyncio
import sys

from fastapi import FastAPI

from services.gateway.app import create_app, create_token
from services.gateway.settings import GatewaySettings
from shared.auth import Role
from shared.local_infra import die_with_parent
from shared.logs import configure_logging
from shared.serve import serve_public


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    commands = parser.add_subparsers(dest="command")
    token = commands.add_parser(
        "create-token", help="apply the gateway's migrations and print a new API token"
    )
    token.add_argument("--subject", required=True, help="who the token acts as")
    token.add_argument("--role", required=True, choices=[role.value for role in Role])
    args = parser.parse_args(argv)

    settings = GatewaySettings()
    if args.command == "create-token":
        if not args.subject.strip():
            parser.error("--subject must not be empty")
        plaintext = asyncio.run(create_token(settings, subject=args.subject, role=Role(args.role)))
        sys.stdout.write(plaintext + "\n")
        return
    serve_public(
        "services.gateway.__main__:served_app",
        settings.http_host,
        settings.http_port,
        header_timeout_seconds=settings.header_timeout_seconds,
        max_connections=settings.max_connections,
        max_header_bytes=settings.max_header_bytes,
    )


def served_app() -> FastAPI:
    """The app as the server's worker process builds it: settings from the environment."""
    die_with_parent()  # a gateway killed -9 leaves no worker holding its port
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_format, settings.log_level)
    return create_app(settings)


if __name__ == "__main__":
    main()
