"""Alembic environment of the datasets service: it creates, versions and sees only schema
`datasets`."""

from alembic import context

from services.datasets.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
