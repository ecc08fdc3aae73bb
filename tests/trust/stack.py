"""A seeded CRM and a running assistant for the trust tests (load and fuzz).

The CRM holds the small Online Retail fixture of tests/support/retail.py
(customers 12347-12350, orders 500001-500007), reps ``rep:1`` .. ``rep:8`` under
``manager:1`` with 24 scored leads (rep ``n`` owns leads ``n``, ``n + 8`` and
``n + 16``), one agent, and one open escalation.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert

from crm_ml import loader
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.retail import retail_frame

LEADS = range(1, 25)
SCORES = {lead: round(0.05 + 0.037 * ((lead * 7) % 24), 3) for lead in LEADS}
# The latest sale of each fixture customer (what "where is my order" answers).
LATEST_ORDER = {12347: "500001", 12348: "500002", 12349: "500006", 12350: "500007"}


def owner_of(lead: int) -> int:
    """The rep owning a lead (leads go round-robin over the 8 reps)."""
    return (lead - 1) % 8 + 1


def seed_crm(url: str) -> None:
    """Create and fill the CRM at ``url``."""
    migrate.upgrade(url)
    bank = pd.DataFrame({"age": range(30, 54), "campaign": [1] * 24, "y": ["no"] * 24})
    xedu = pd.DataFrame({"Lead Number": [], "Converted": []})
    records, summary = loader.prepare_leads(bank, xedu)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash="trust")
        loader.load_leads(conn, records, summary, data_hash="trust")
        conn.execute(insert(m.LeadScore), [
            {"lead_id": lead, "score": score, "model_version": "test",
             "reasons": [{"text": f"reason for lead {lead}", "effect": "raises", "weight": 1}]}
            for lead, score in SCORES.items()])
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
