"""Inbox: which events each consumer has already applied, so a redelivery has no second effect."""

from sqlalchemy import Column, DateTime, MetaData, String, Table, Uuid, func

INBOX_TABLE = "inbox"


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", String(255), primary_key=True),
        Column("event_id", Uuid, primary_key=True),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
