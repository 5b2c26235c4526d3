"""Alembic environment of the registry: it creates, versions and sees only schema `registry`."""

from alembic import context

from services.registry.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
