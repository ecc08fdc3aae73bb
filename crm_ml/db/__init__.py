"""CRM database: schema, engines, sessions and migrations.

The names below load SQLAlchemy 2 on first use, not with the package, so that
the standard-library module :mod:`crm_ml.db.sqlite_guard` also imports in the
bot env (SQLAlchemy 1.4), where ``bot/sql.py`` uses it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crm_ml.db.models import Base
    from crm_ml.db.session import get_engine, session_scope

__all__ = ["Base", "get_engine", "session_scope"]

_HOMES = {"Base": "crm_ml.db.models", "get_engine": "crm_ml.db.session",
          "session_scope": "crm_ml.db.session"}


def __getattr__(name: str) -> Any:
    """``Base``, ``get_engine`` and ``session_scope``, imported on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
