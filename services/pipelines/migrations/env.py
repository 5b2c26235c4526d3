"""Alembic environment of the pipelines service: it creates, versions and sees only schema
`pipelines`."""

from alembic import context

from services.pipelines.models import metadata
from shared.migrations import run_env

run_env(context, metadata)
