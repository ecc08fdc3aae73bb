"""Helpdesk tables: conversation threads, their messages, ratings."""

from __future__ import annotations

from crm_ml.db.base import Base, utcnow  # noqa: F401

__all__: list[str] = []
