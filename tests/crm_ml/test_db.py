"""Schema and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from crm_ml.db import migrate
from crm_ml.db.models import Base
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
