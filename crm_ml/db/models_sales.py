"""Sales-assistant tables: follow-up tasks and undoable writes."""

from __future__ import annotations

from crm_ml.db.base import Base, utcnow  # noqa: F401

__all__: list[str] = []
