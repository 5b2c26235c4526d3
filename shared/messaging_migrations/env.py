"""Alembic environment of the outbox and inbox, run in each service's schema after its own."""

from alembic import context

from shared.migrations import run_messaging_env

run_messaging_env(context)
