"""A seeded CRM for the trust tests (load and fuzz).

The CRM of :mod:`tests.support.seed` (the Online Retail fixture, reps
``rep:1`` .. ``rep:8`` under ``manager:1`` with 24 scored leads), plus one
agent and one open escalation.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.seed import LEADS, SCORES, owner_of, seed_leads

__all__ = ["LATEST_ORDER", "LEADS", "SCORES", "owner_of", "seed_crm", "signed", "sqlite_rows"]

logger = logging.getLogger(__name__)

# The latest sale of each fixture customer (what "where is my order" answers).
LATEST_ORDER = {12347: "500001", 12348: "500002", 12349: "500006", 12350: "500007"}


def seed_crm(url: str) -> None:
    """Create and fill the CRM at ``url``: the seeded leads, one agent, one open escalation."""
    seed_leads(url, data_hash="trust")
    with get_engine(url).begin() as conn:
        conn.execute(insert(m.Agent), [{"id": 1, "username": "agent1", "name": "Agent One",
                                        "password_hash": "!"}])
        conn.execute(insert(m.Escalation), [{
            "id": 1, "sender_id": "web:seeded-escalation", "channel": "web",
            "customer_id": 12347, "reason": "explicit_request", "status": "open",
            "sentiment": "negative", "transcript": [{"from": "customer", "text": "a human"}],
            "sentiment_history": [], "context": {"customer_id": 12347, "verified": True},
            "created_at": dt.datetime(2011, 12, 1, 12, 0)}])
    get_engine(url).dispose()


def signed(user: str, secret: str) -> dict[str, Any]:
    """Message metadata signing the sender as ``user``."""
    return {"auth": {"user": user, "sig": sign(user, secret)}}


def sqlite_rows(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of a read-only query on a SQLite file (the servers may still be writing)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
