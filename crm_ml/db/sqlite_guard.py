"""Guards for a SQLite file under a connection pool: standard library only.

Both environments open the same kind of SQLite files: crm_ml with SQLAlchemy 2
(:mod:`crm_ml.db.session`), the Rasa process with SQLAlchemy 1.4 (``bot/sql.py``).
Each engine opens its file read-write without creating it (``mode=rw``), sets
write-ahead logging, and drops a pooled connection whose file is no longer the
one at the path (moved away or deleted) instead of writing on into it. The
logic lives here once; the caller passes in its own SQLAlchemy's event API and
``DisconnectionError``, so this module imports no SQLAlchemy (the bot env's
1.4 and the app env's 2 both use it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

logger = logging.getLogger(__name__)

__all__ = [
    "READ_WRITE_QUERY",
    "FileId",
    "file_id",
    "guarded_path",
    "read_write_database",
    "set_pragmas",
    "watch_file",
]

FileId = tuple[int, int] | None
"""A file's identity (device, inode); None when nothing is at the path."""

READ_WRITE_QUERY: dict[str, str] = {"mode": "rw", "uri": "true"}
"""URL query that makes SQLite open an existing file read-write, never create one."""


def file_id(path: Path) -> FileId:
    """The identity of the file at ``path``, or None when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def guarded_path(database: str | None, query: Mapping[str, Any]) -> Path | None:
    """The absolute path of a plain SQLite file URL's database, else None.

    None for an in-memory database, and for a URL that already is a SQLite URI
    (``file:...`` or a ``uri`` query parameter): those are used as given.

    Args:
        database: The URL's database part (a path, ``:memory:``, ``file:...`` or empty).
        query: The URL's query parameters.
    """
    if not database or database == ":memory:" or database.startswith("file:") \
            or "uri" in query:
        return None
    return Path(database).absolute()


def read_write_database(path: Path) -> str:
    """The URL database part that opens ``path`` as a URI (with :data:`READ_WRITE_QUERY`)."""
    return f"file:{quote(str(path))}"


def set_pragmas(dbapi_conn: Any, _record: Any = None, *, foreign_keys: bool = False) -> None:
    """Write-ahead logging, ``synchronous=NORMAL`` and a 5 s busy timeout on a new connection.

    A ``connect`` event listener. ``synchronous=NORMAL``: a commit survives the
    process crashing; the last commits may be lost if the machine loses power.

    Args:
        dbapi_conn: The new DB-API (sqlite3) connection.
        _record: The pool's connection record (unused).
        foreign_keys: Also enforce foreign keys (the CRM's schema relies on them).
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    if foreign_keys:
        cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def watch_file(listens_for: Callable[..., Callable[[Callable[..., None]], Any]],
               engine: Any, path: Path, disconnected: type[Exception]) -> None:
    """Drop pooled connections of ``engine`` whose file is no longer the one at ``path``.

    Each new connection remembers the file's identity; at checkout, a
    connection whose file was moved or deleted raises ``disconnected``, which
    SQLAlchemy's pool takes as a dead connection (it opens a new one, and that
    fails while the file is missing, because of ``mode=rw``).

    Args:
        listens_for: SQLAlchemy's ``event.listens_for`` (1.4 or 2).
        engine: The engine of the SQLite file.
        path: The file's absolute path.
        disconnected: SQLAlchemy's ``exc.DisconnectionError``.
    """

    @listens_for(engine, "connect")
    def remember_file(_dbapi_conn: Any, record: Any) -> None:
        record.info["file"] = file_id(path)

    @listens_for(engine, "checkout")
    def same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("file") != file_id(path):
            raise disconnected("the SQLite file was moved or deleted")
