"""Programmatic Alembic: ``crm-ml db upgrade`` without an alembic.ini."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from crm_ml.config import get_settings
from crm_ml.db.session import get_engine

__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "current",
    "downgrade",
    "upgrade",
]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """Build the Alembic config for ``url`` (default: the configured CRM)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "heads") -> None:
    """Migrate the database at ``url`` to ``revision`` (every branch's head by default).

    Independent parts of the schema (the helpdesk, the sales assistant, model
    outputs) are Alembic branches off one revision, so the default is ``heads``.
    """
    cfg = alembic_config(url)
    engine = get_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    cfg = alembic_config(url)
    with get_engine(url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current(url: str | None = None) -> str | None:
    """Return the revisions the database is at (comma separated), or None when it is empty."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    return ",".join(sorted(heads)) or None
