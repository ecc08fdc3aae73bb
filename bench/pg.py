"""PostgreSQL and Redis for the scaling part: scratch databases, a CRM copy, cleanup.

The scaled configuration keeps everything shared off the Rasa processes:
conversations in a PostgreSQL tracker store, conversation locks in Redis, and
the CRM itself on PostgreSQL (the event broker of every process writes to it;
a SQLite file admits one writer at a time, and its busy wait blocks Rasa's
event loop). Databases are named ``crm_bench_<hex>`` and dropped afterwards.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

logger = logging.getLogger(__name__)

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def unavailable() -> str | None:
    """Why PostgreSQL or Redis cannot be used here (not answering), or None."""
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return f"{name} is not answering on 127.0.0.1:{port}"
    return None


def create_db(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')  # the name is ours: crm_bench_<hex>


def drop_db(name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(ADMIN_URL, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        logger.exception("could not drop %s", name)


def clear_redis(prefix: str) -> None:
    """Delete the lock keys the benchmark's Rasa processes left under ``prefix``."""
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=6379, db=0)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    except Exception:  # noqa: BLE001 - cleanup only
        logger.exception("could not clear the Redis lock keys")


def copy_crm(sqlite_url: str, db: str) -> dict[str, Any]:
    """Migrate a new PostgreSQL CRM ``db`` and copy every table of the SQLite CRM into it.

    Returns:
        The CRM URL (``postgresql+psycopg://...``) and rows copied per table.
    """
    import psycopg
    from sqlalchemy import JSON, Integer, select

    from crm_ml.db import migrate
    from crm_ml.db.models import Base
    from crm_ml.db.session import get_engine

    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    migrate.upgrade(url)
    source = get_engine(sqlite_url)
    copied: dict[str, int] = {}
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}") as pg, \
            source.connect() as lite:
        for table in Base.metadata.sorted_tables:
            cols = [c.name for c in table.columns]
            json_cols = {i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)}
            rows = lite.execute(select(*table.columns)).all()
            names = ", ".join(f'"{c}"' for c in cols)
            with pg.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as cp:
                for row in rows:
                    cp.write_row([json.dumps(v) if i in json_cols and v is not None else v
                                  for i, v in enumerate(row)])
            copied[table.name] = len(rows)
            pk = list(table.primary_key.columns)
            if len(pk) == 1 and isinstance(pk[0].type, Integer):
                pg.execute(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', "
                           f"'{pk[0].name}'), COALESCE(MAX(\"{pk[0].name}\"), 0) + 1, false) "
                           f'FROM "{table.name}"')
        pg.commit()
    get_engine(url).dispose()
    return {"url": url, "rows": copied}
