"""Alembic environment for the gateway's schema only."""

from alembic import context

from services.gateway.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
