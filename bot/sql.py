"""SQLAlchemy engines of the Rasa process (bot env, SQLAlchemy 1.4).

SQLAlchemy 1.4 gives a SQLite file no connection pool (a new connection, and
a new journal set-up, per transaction) and SQLite's default ``synchronous=FULL``
waits for the disk on every commit. Both showed in the profile of a loaded Rasa
process. Here a SQLite file gets a small pool and write-ahead logging with
``synchronous=NORMAL`` (a commit survives the process crashing; the last
commits may be lost if the machine loses power), like crm_ml's own engines;
other databases get a pre-pinged pool.
"""

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

logger = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def is_sqlite_file(url: Any) -> bool:
    url = sa.engine.make_url(url) if isinstance(url, str) else url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def create_engine(url: Any, **kwargs: Any) -> sa.engine.Engine:
    """An engine for ``url`` (a URL string or object) with the settings above."""
    if is_sqlite_file(url):
        engine = sa.create_engine(
            url, poolclass=QueuePool, pool_size=2, max_overflow=4,
            connect_args={"timeout": 5, "check_same_thread": False}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)
