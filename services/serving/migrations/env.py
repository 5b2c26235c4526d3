"""Alembic environment of the serving service: it creates, versions and sees only schema `serving`."""

from alembic import context

from services.serving.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
