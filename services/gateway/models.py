"""The gateway's tables in schema `gateway` (plus the outbox and inbox every service has)."""

from sqlalchemy import CheckConstraint, Column, DateTime, String, Table, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB

from shared.db import schema_metadata

SCHEMA = "gateway"
metadata = schema_metadata(SCHEMA)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    # sha256 hex of the plaintext token; the plaintext is shown once and never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("role IN ('viewer', 'editor', 'approver', 'admin')", name="role"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("description", Text),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Which backend serves a concern (e.g. "training_execution") in an env; see shared/integrations.py.
integration_configs = Table(
    "integration_configs",
    metadata,
    Column("env", String(8), primary_key=True),
    Column("concern", String(64), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("updated_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("env IN ('dev', 'stg', 'prod')", name="env"),
)
