"""SQLAlchemy engines of the Rasa process (bot env, SQLAlchemy 1.4).

SQLAlchemy 1.4 gives a SQLite file no connection pool (a new connection, and
a new journal set-up, per transaction) and SQLite's default ``synchronous=FULL``
waits for the disk on every commit. Both showed in the profile of a loaded Rasa
process. Here a SQLite file gets a small pool and write-ahead logging with
``synchronous=NORMAL`` (a commit survives the process crashing; the last
commits may be lost if the machine loses power), like crm_ml's own engines,
and the same guards (crm_ml/db/session.py): a pooled connection whose file was
moved or deleted is dropped instead of writing into the old file, and a missing
file is an error, not a new empty database. PostgreSQL gets a pre-pinged pool
and a connect timeout (a server that accepts but never answers would hold the
caller for minutes).
"""

import logging
import os
from pathlib import Path
from typing import Any, Optional, Tuple
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def is_sqlite_file(url: Any) -> bool:
    url = sa.engine.make_url(url) if isinstance(url, str) else url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def _file_id(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def create_engine(url: Any, **kwargs: Any) -> sa.engine.Engine:
    """An engine for ``url`` (a URL string or object) with the settings above."""
    url = sa.engine.make_url(url) if isinstance(url, str) else url
    if is_sqlite_file(url) and not str(url.database).startswith("file:"):
        path = Path(str(url.database)).absolute()
        read_write = url.set(database=f"file:{quote(str(path))}",
                             query={**url.query, "mode": "rw", "uri": "true"})
        engine = sa.create_engine(
            read_write, poolclass=QueuePool, pool_size=2, max_overflow=4,
            connect_args={"timeout": 5, "check_same_thread": False}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)

        @sa.event.listens_for(engine, "connect")
        def remember_file(_dbapi_conn: Any, record: Any) -> None:
            record.info["file"] = _file_id(path)

        @sa.event.listens_for(engine, "checkout")
        def same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            if record.info.get("file") != _file_id(path):
                raise DisconnectionError("the SQLite file was moved or deleted")

        return engine
    connect_args = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
