"""The declarative base every CRM table shares, with Alembic-stable constraint names.

The tables live in :mod:`crm_ml.db.models` (the core CRM) and its companion
``models_sales`` (follow-ups, undo), which :mod:`crm_ml.db.models` imports, so
importing it gives the whole schema. A part of the product with tables of its
own adds a companion module the same way, with its own Alembic branch.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, MetaData
from sqlalchemy.orm import DeclarativeBase

__all__ = ["NAMING", "Base", "utcnow"]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (needed by Alembic)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def utcnow() -> dt.datetime:
    """The current UTC time without a time zone, as the CRM stores times."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
