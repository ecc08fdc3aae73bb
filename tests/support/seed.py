"""A small seeded CRM for the tests that run the real servers (end-to-end and trust).

The Online Retail fixture of :mod:`tests.support.retail` (customers
12347-12350, orders 500001-500007), reps ``rep:1`` .. ``rep:8`` under
``manager:1``, and 24 scored leads: rep ``n`` owns leads ``n``, ``n + 8`` and
``n + 16``.
"""

from __future__ import annotations

import logging

import pandas as pd
from sqlalchemy import insert

from crm_ml import loader
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.session import get_engine
from tests.support.retail import retail_frame

logger = logging.getLogger(__name__)

LEADS = range(1, 25)
SCORES = {lead: round(0.05 + 0.037 * ((lead * 7) % 24), 3) for lead in LEADS}


def owner_of(lead: int) -> int:
    """The rep owning a lead (leads go round-robin over the 8 reps)."""
    return (lead - 1) % 8 + 1


def seed_leads(url: str, data_hash: str) -> None:
    """Create the CRM at ``url`` and fill it with the retail fixture and the scored leads.

    Args:
        url: SQLAlchemy URL of an empty CRM.
        data_hash: What the loader records as the data's hash (names the test).
    """
    migrate.upgrade(url)
    bank = pd.DataFrame({"age": range(30, 54), "campaign": [1] * 24, "y": ["no"] * 24})
    xedu = pd.DataFrame({"Lead Number": [], "Converted": []})
    records, summary = loader.prepare_leads(bank, xedu)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash=data_hash)
        loader.load_leads(conn, records, summary, data_hash=data_hash)
        conn.execute(insert(m.LeadScore), [
            {"lead_id": lead, "score": score, "model_version": "test",
             "reasons": [{"text": f"reason for lead {lead}", "effect": "raises", "weight": 1}]}
            for lead, score in SCORES.items()])
