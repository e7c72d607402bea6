"""A fresh PostgreSQL database for one `enactor outage --nodes N --store postgresql://...` run
(shell). Every run starts from the zone files, as the SQLite run starts from a new file, and
the database is dropped afterwards, so the server the user named is left as it was."""

from __future__ import annotations

import os
import time


def fresh_database(url: str) -> tuple[str, str]:
    """Create `enactor_outage_<pid>_<time>` in the server of `url`: (name, its URL)."""
    from urllib.parse import urlsplit

    import psycopg

    name = f"enactor_outage_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, urlsplit(url)._replace(path="/" + name).geturl()


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
