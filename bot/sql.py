"""SQLAlchemy engines of the Rasa process (bot env, SQLAlchemy 1.4).

SQLAlchemy 1.4 gives a SQLite file no connection pool (a new connection, and
a new journal set-up, per transaction) and SQLite's default ``synchronous=FULL``
waits for the disk on every commit. Both showed in the profile of a loaded Rasa
process. Here a SQLite file gets a small pool and write-ahead logging with
``synchronous=NORMAL`` (a commit survives the process crashing; the last
commits may be lost if the machine loses power), like crm_ml's own engines,
and the same guards (:mod:`crm_ml.db.sqlite_guard`, shared with crm_ml): a
pooled connection whose file was moved or deleted is dropped instead of
writing into the old file, and a missing file is an error, not a new empty
database. PostgreSQL gets a pre-pinged pool
and a connect timeout (a server that accepts but never answers would hold the
caller for minutes).
"""

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

from crm_ml.db.sqlite_guard import (
    READ_WRITE_QUERY,
    guarded_path,
    read_write_database,
    set_pragmas,
    watch_file,
)

logger = logging.getLogger(__name__)

__all__ = ["CONNECT_TIMEOUT_S", "create_engine", "is_sqlite_file"]

CONNECT_TIMEOUT_S = 5


def is_sqlite_file(url: Any) -> bool:
    """Whether ``url`` (a URL string or object) names a SQLite database in a file."""
    url = sa.engine.make_url(url) if isinstance(url, str) else url
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def create_engine(url: Any, **kwargs: Any) -> sa.engine.Engine:
    """An engine for ``url`` (a URL string or object) with the settings above.

    Args:
        url: The database URL.
        kwargs: More arguments for ``sqlalchemy.create_engine``.

    Returns:
        The engine (a SQLite file's opened read-write, never created).
    """
    url = sa.engine.make_url(url) if isinstance(url, str) else url
    path = guarded_path(url.database, url.query) if url.get_backend_name() == "sqlite" \
        else None
    if path is not None:
        read_write = url.set(database=read_write_database(path),
                             query={**url.query, **READ_WRITE_QUERY})
        engine = sa.create_engine(
            read_write, poolclass=QueuePool, pool_size=2, max_overflow=4,
            connect_args={"timeout": 5, "check_same_thread": False}, **kwargs)
        sa.event.listen(engine, "connect", set_pragmas)
        watch_file(sa.event.listens_for, engine, path, DisconnectionError)
        return engine
    connect_args = {}
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
