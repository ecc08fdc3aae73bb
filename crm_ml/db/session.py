"""Engines and short transactions.

One engine (with its connection pool) per database URL and process, created on
first use, never at import time. Callers own one short transaction each::

    with session_scope() as s:
        n = queries.count_customers(session=s)

A SQLite file is created (empty) with its engine if it is missing; after that
its connections open it read-write without creating it, and a pooled
connection whose file is no longer the one at the path (moved away or
deleted) is dropped at checkout. So a CRM file that vanishes makes the CRM
unavailable (a polite answer) instead of the process carrying on in a deleted
file, or in a new empty one created next to the old file's write-ahead log,
and the file is used again from the first transaction after it is back.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_ml.config import get_settings
from crm_ml.db.sqlite_guard import (
    READ_WRITE_QUERY,
    guarded_path,
    read_write_database,
    set_pragmas,
    watch_file,
)
from crm_ml.errors import CRMUnavailable

__all__ = [
    "CONNECT_TIMEOUT_S",
    "get_engine",
    "session_scope",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
"""How long a new PostgreSQL connection may take (unless the URL says otherwise)."""


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    set_pragmas(dbapi_conn, foreign_keys=True)


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """Return the pooled engine for ``url`` (default: the configured CRM)."""
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        return _sqlite_engine(make_url(url))
    parsed = make_url(url)
    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # libpq waits for a server that accepts but never answers for minutes, and
        # every action waiting on it holds one of the action server's few threads.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(parsed, pool_size=5, max_overflow=10, pool_pre_ping=True,
                         connect_args=connect_args)


def _sqlite_engine(url: URL) -> Engine:
    path = guarded_path(url.database, url.query)
    if path is None:  # in memory, or a URI used as given
        engine = create_engine(url, connect_args={"timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        sqlite3.connect(path).close()  # a new, empty database: the only time one is made
    read_write = url.set(database=read_write_database(path),
                         query={**url.query, **READ_WRITE_QUERY})
    engine = create_engine(read_write, connect_args={"timeout": 5})
    event.listen(engine, "connect", _sqlite_pragmas)
    watch_file(event.listens_for, engine, path, DisconnectionError)
    return engine


@lru_cache(maxsize=8)
def _factory(url: str | None) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """Open one short transaction; commit on success, roll back on error.

    Raises:
        CRMUnavailable: the database could not be reached or failed operationally.
    """
    try:
        with _factory(url).begin() as session:
            yield session
    except (OperationalError, DBAPIError) as exc:
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            raise CRMUnavailable("the CRM database is unavailable") from exc
        raise
