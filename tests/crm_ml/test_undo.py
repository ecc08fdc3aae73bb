"""crm_ml.undo: "undo" reverts the conversation's last write, once, audited."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from crm_ml import followups, sales, undo
from crm_ml.db import models as m
from crm_ml.db.models_sales import Task
from crm_ml.db.session import session_scope
from tests.crm_ml.test_followups import template_db, url  # noqa: F401 - fixtures
from tests.crm_ml.test_sales import REP2, REP3


def test_undo_reverts_the_last_writes_in_turn(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        sales.log_interaction(session=s, identity=REP2, text="called 412, no answer",
                              sender_id="c1", channel="rest", lead_id=412)
        sales.update_lead_status(session=s, identity=REP2, status="qualified", lead_id=412,
                                 sender_id="c1")
        followups.remind(session=s, identity=REP2, number=410, today=dt.date(2011, 12, 9),
                         message="call 410 tomorrow", sender_id="c1")
    with session_scope(url) as s:
        first = undo.undo_last(session=s, identity=REP2, sender_id="c1")
        second = undo.undo_last(session=s, identity=REP2, sender_id="c1")
        third = undo.undo_last(session=s, identity=REP2, sender_id="c1")
        with pytest.raises(undo.NothingToUndo):
            undo.undo_last(session=s, identity=REP2, sender_id="c1")
    assert [first.action, second.action, third.action] == [
        "create_task", "update_lead_status", "log_interaction"]
    with session_scope(url) as s:
        assert s.get(m.Lead, 412).status == "contacted"
        assert s.scalar(select(func.count()).select_from(m.Interaction)) == 0
        assert s.scalar(select(Task.status)) == "cancelled"
        undos = s.scalar(select(func.count()).select_from(m.AuditLog)
                         .where(m.AuditLog.action == "undo"))
    assert undos == 3


def test_undo_is_per_conversation_and_per_person(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        sales.log_interaction(session=s, identity=REP2, text="a note", sender_id="c1",
                              channel="rest", lead_id=412)
    with session_scope(url) as s:
        with pytest.raises(undo.NothingToUndo):
            undo.undo_last(session=s, identity=REP2, sender_id="other")
        with pytest.raises(undo.NothingToUndo):
            undo.undo_last(session=s, identity=REP3, sender_id="c1")
        assert s.scalar(select(func.count()).select_from(m.Interaction)) == 1


def test_undo_leaves_a_status_changed_since(url: str) -> None:  # noqa: F811
    with session_scope(url) as s:
        sales.update_lead_status(session=s, identity=REP2, status="qualified", lead_id=412,
                                 sender_id="c1")
    with session_scope(url) as s:
        s.get(m.Lead, 412).status = "won"
    with session_scope(url) as s:
        done = undo.undo_last(session=s, identity=REP2, sender_id="c1")
    assert not done.still_changed
    with session_scope(url) as s:
        assert s.get(m.Lead, 412).status == "won"
