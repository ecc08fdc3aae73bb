"""Engines and short transactions.

One engine (with its connection pool) per database URL and process, created on
first use, never at import time. Callers own one short transaction each::

    with session_scope() as s:
        n = queries.count_customers(session=s)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from crm_ml.config import get_settings
from crm_ml.errors import CRMUnavailable

logger = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


@lru_cache(maxsize=8)
def get_engine(url: str | None = None) -> Engine:
    """Return the pooled engine for ``url`` (default: the configured CRM)."""
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)
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
