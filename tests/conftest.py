"""Shared fixtures: migrated SQLite and PostgreSQL databases, settings overrides."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# tests/bot_env/ runs in the bot env (Rasa 3.6, SQLAlchemy 1.4): `make test` runs it
# with that interpreter; the app env's pytest does not collect it.
try:  # the app env; in the bot env only tests/bot_env is collected
    from crm_ml.config import get_settings
    from crm_ml.db import migrate
    from crm_ml.db.session import _factory, get_engine

    collect_ignore = ["bot_env"]
except ImportError:  # pragma: no cover - the bot env (SQLAlchemy 1.4)
    collect_ignore = []
PG_ADMIN_URL = os.environ.get(
    "CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _reset_caches() -> None:
    get_settings.cache_clear()
    get_engine.cache_clear()
    _factory.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file migrated to head."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    migrate.upgrade(url)
    return url


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means: skip with the reason
        return f"PostgreSQL not reachable at {PG_ADMIN_URL} ({type(exc).__name__}: {exc})"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the loopback server, migrated, dropped afterwards."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"crm_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        migrate.upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        _reset_caches()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment variables for a test; settings are re-read around it."""
    _reset_caches()
    yield monkeypatch
    monkeypatch.undo()
    _reset_caches()
