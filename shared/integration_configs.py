"""A service's copy of the gateway's IntegrationConfig rows it uses, kept from the
IntegrationConfigChanged events: the columns, and the upsert that keeps the newest change."""

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, String, text
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.events.gateway import IntegrationConfigChanged

log = logging.getLogger(__name__)

ENVS_SQL = "env IN ('dev', 'stg', 'prod')"


class IntegrationConfigCopy:
    """Mixed into a service's declarative `IntegrationConfig` (table `integration_configs`)."""

    __tablename__ = "integration_configs"

    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (CheckConstraint(ENVS_SQL, name="env"),)

    env: Mapped[str] = mapped_column(String(8), primary_key=True)
    concern: Mapped[str] = mapped_column(String(64), primary_key=True)
    backend: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


async def keep_newest(
    session: AsyncSession, model: type[IntegrationConfigCopy], values: dict[str, Any]
) -> bool:
    """Keep the config unless the stored one is newer; False when it was older (arrived late)."""
    new = insert(model).values(**values)
    stmt = new.on_conflict_do_update(
        index_elements=["env", "concern"],
        set_={
            name: new.excluded[name] for name in ("backend", "settings", "changed_by", "changed_at")
        },
        where=model.changed_at < new.excluded.changed_at,
    ).returning(model.env)
    return (await session.execute(stmt)).first() is not None


async def keep_change(
    session: AsyncSession, model: type[IntegrationConfigCopy], change: IntegrationConfigChanged
) -> bool:
    """Keep the event's config unless a newer one is stored; False (said in the log) when it
    arrived late."""
    kept = await keep_newest(
        session,
        model,
        {
            "env": change.env,
            "concern": change.concern,
            "backend": change.backend,
            "settings": change.settings,
            "changed_by": change.changed_by,
            "changed_at": change.changed_at,
        },
    )
    if not kept:
        log.info(
            "%s of %s changed at %s is older than the one kept; ignored",
            change.concern,
            change.env,
            change.changed_at,
        )
    return kept
