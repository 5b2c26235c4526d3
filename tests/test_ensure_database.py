"""Services that start together on a server without their database all find it made."""

import asyncio
import secrets

from sqlalchemy.engine import make_url

from shared.db import connect_raw
from shared.local_infra import drop_database
from shared.migrations import ensure_database


async def test_services_starting_at_once_on_a_fresh_server_all_get_the_database(
    database_server_url: str,
) -> None:
    # As `make up` on a fresh machine: every service creates the database it does not find.
    name = f"modelplane_fresh_{secrets.token_hex(4)}"
    url = make_url(database_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        for _ in range(3):  # the race is one of timing: give it several chances
            await asyncio.gather(*(ensure_database(url) for _ in range(8)))
            conn = await connect_raw(url)
            try:
                assert await conn.fetchval("SELECT current_database()") == name
            finally:
                await conn.close()
            await drop_database(database_server_url, name)
    finally:
        await drop_database(database_server_url, name)
