"""Schema and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from crm_ml.db import migrate
from crm_ml.db.models import Base, Customer
from crm_ml.db.session import get_engine, session_scope
from crm_ml.errors import CRMUnavailable

DESIGN_TABLES = {
    "customers", "products", "orders", "order_lines", "sales_reps", "leads", "accounts",
    "interactions", "escalations", "tickets", "lead_scores", "churn_scores", "segments",
    "recommendations", "forecasts", "model_runs", "audit_log",
}


@pytest.mark.parametrize("backend", ["sqlite_url", "pg_url"])
def test_migrations_create_the_design_tables(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(backend)
    names = set(inspect(get_engine(url)).get_table_names())
    assert DESIGN_TABLES <= names
    assert set(Base.metadata.tables) <= names  # the models and the migrations agree
    assert migrate.current(url) is not None


@pytest.mark.parametrize("backend", ["sqlite_url", "pg_url"])
def test_migrations_are_reversible(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(backend)
    migrate.downgrade(url, "base")
    assert not DESIGN_TABLES & set(inspect(get_engine(url)).get_table_names())
    migrate.upgrade(url)
    assert DESIGN_TABLES <= set(inspect(get_engine(url)).get_table_names())


def test_models_match_the_latest_migration(sqlite_url: str) -> None:
    """Autogenerate finds nothing to do: no model change without a revision."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with get_engine(sqlite_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_unreachable_database_becomes_crm_unavailable() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:9/nothing?connect_timeout=1"
    with pytest.raises(CRMUnavailable), session_scope(url) as s:
        s.execute(Base.metadata.tables["customers"].select())


def _customers(url: str) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(select(Customer.name).order_by(Customer.id)))


def test_a_moved_sqlite_file_is_unavailable_until_it_is_back(tmp_path) -> None:
    """A running process notices at its next transaction; it never makes a new empty CRM."""
    path = tmp_path / "crm.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    with session_scope(url) as s:
        s.add(Customer(id=1, name="Ada", email="ada@example.com", country="UK",
                       anonymized=False))
    assert _customers(url) == ["Ada"]  # the pool now holds a connection to the file
    away = tmp_path / "away.db"
    path.rename(away)
    for _ in range(2):
        with pytest.raises(CRMUnavailable), session_scope(url) as s:
            s.execute(select(Customer.id))
    assert not path.exists()
    away.rename(path)
    assert _customers(url) == ["Ada"]
    get_engine(url).dispose()


def test_a_new_sqlite_engine_creates_its_file(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'new.db'}"
    with get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "sub" / "new.db").is_file()
    get_engine(url).dispose()


def test_a_postgresql_server_that_never_answers_is_unavailable_within_seconds() -> None:
    """Without a connect timeout libpq waits about two minutes per attempt."""
    import socket
    import time

    with socket.socket() as server:  # accepts connections (the backlog), never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"postgresql+psycopg://nobody@127.0.0.1:{server.getsockname()[1]}/crm"
        started = time.monotonic()
        with pytest.raises(CRMUnavailable), session_scope(url) as s:
            s.execute(select(Customer.id))
        assert time.monotonic() - started < 15
        get_engine(url).dispose()
