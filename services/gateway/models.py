"""The gateway's tables in schema `gateway` (plus the outbox and inbox every service has)."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from shared.db import schema_metadata

SCHEMA = "gateway"
metadata = schema_metadata(SCHEMA)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("subject", String(200), nullable=False),
    # The platform role, held in every project; NULL: only the subject's memberships count.
    Column("role", String(20)),
    # The projects the token may reach, whatever its roles; NULL: not limited.
    Column("project_ids", ARRAY(Uuid)),
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

# A subject's role in one project, managed by the project's admins.
memberships = Table(
    "memberships",
    metadata,
    Column(
        "project_id", Uuid, ForeignKey("gateway.projects.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("subject", String(200), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("role IN ('viewer', 'editor', 'approver', 'admin')", name="role"),
    Index("ix_memberships_subject", "subject"),
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

# A caller's Idempotency-Key and the first reply to the POST it came with (services/gateway/
# idempotency.py); `status` NULL while that request is under way. Kept until pruned.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("subject", String(200), primary_key=True),
    Column("key", String(255), primary_key=True),
    # Which request holds the key: only it may complete or release it.
    Column("claim", Uuid, nullable=False),
    Column("method", String(16), nullable=False),
    Column("target", Text, nullable=False),  # the path and query
    Column("request_hash", LargeBinary),  # sha256 of the body
    Column("status", SmallInteger),
    Column("headers", JSONB),  # [[name, value], ...]
    Column("body", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_idempotency_keys_created_at", "created_at"),
)
