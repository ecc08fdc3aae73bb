"""CRM tables the newer models write: lifetime value, topics, anomalies."""

from __future__ import annotations

from crm_ml.db.base import Base, utcnow  # noqa: F401

__all__: list[str] = []
