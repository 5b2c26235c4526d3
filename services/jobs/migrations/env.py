"""Alembic environment of the jobs service: it creates, versions and sees only schema `jobs`."""

from alembic import context

from services.jobs.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
