"""crm_ml.followups: due times in the rep's zone, tasks on the rep's own leads, reminders
queued once in the Telegram outbox."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from crm_ml import followups, sales
from crm_ml.authz import Forbidden
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.models_sales import Task
from crm_ml.db.session import get_engine, session_scope
from tests.crm_ml.test_sales import CUSTOMER, REP2, REP3, seed_crm

DAY = dt.date(2011, 12, 9)  # a Friday


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("followups") / "template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    seed_crm(url)
    return path


@pytest.fixture
def url(template_db: Path, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "crm.db"
    shutil.copy(template_db, path)
    yield f"sqlite:///{path}"
    get_engine(f"sqlite:///{path}").dispose()


@pytest.mark.parametrize("words,local", [
    ("remind me to call lead 49498 tomorrow at 10", dt.datetime(2011, 12, 10, 10)),
    ("call 412 monday 3pm", dt.datetime(2011, 12, 12, 15)),
    ("call 412 on friday at 14:30", dt.datetime(2011, 12, 16, 14, 30)),
    ("ring 412 today at 3", dt.datetime(2011, 12, 9, 15)),
    ("call 412 next week", dt.datetime(2011, 12, 12, 9)),
    ("call lead 412", dt.datetime(2011, 12, 12, 9)),  # nothing said: next working day 9:00
    ("call lead 412 in 2 hours", dt.datetime(2011, 12, 9, 11)),
])
def test_due_times_read_as_people_say_them(words: str, local: dt.datetime) -> None:
    assert followups.parse_due(words, today=DAY, timezone="Europe/London").local == local


def test_due_time_is_stored_in_utc_from_the_reps_zone() -> None:
    summer = followups.parse_due("tomorrow at 10", today=dt.date(2011, 7, 1),
                                 timezone="Europe/London")
    berlin = followups.parse_due("tomorrow at 10", today=DAY, timezone="Europe/Berlin")
    assert summer.utc == dt.datetime(2011, 7, 2, 9)
    assert berlin.utc == dt.datetime(2011, 12, 10, 9)


def test_a_reminder_is_a_task_on_the_reps_own_lead_audited_and_listed(url: str) -> None:
    with session_scope(url) as s:
        task = followups.remind(session=s, identity=REP2, number=412, today=DAY,
                                message="remind me to call 412 tomorrow at 10", sender_id="c1")
        theirs = followups.remind(session=s, identity=REP2, number=411, today=DAY,
                                  message="remind me to call 411 tomorrow", sender_id="c1")
        with pytest.raises(Forbidden):
            followups.remind(session=s, identity=CUSTOMER, number=412, today=DAY,
                             message="remind me", sender_id="c1")
    assert isinstance(task, followups.TaskInfo) and task.lead_id == 412
    assert (task.kind, task.due_local) == ("call", dt.datetime(2011, 12, 10, 10))
    assert theirs == sales.NeedsChoice(411, [])
    with session_scope(url) as s:
        assert s.scalar(select(m.Interaction.id)) is None  # a task, not a logged call
        actions = s.scalars(select(m.AuditLog.action)).all()
        mine = followups.my_followups(session=s, identity=REP2, today=DAY, span="week")
        other = followups.my_followups(session=s, identity=REP3, today=DAY, span="all")
    assert actions == ["create_task"]
    assert [t.id for t in mine] == [task.id] and other == []


def test_a_reps_own_time_zone_sets_the_due_time(url: str) -> None:
    with session_scope(url) as s:
        s.get(m.SalesRep, 2).timezone = "America/New_York"
    with session_scope(url) as s:
        task = followups.remind(session=s, identity=REP2, number=412, today=DAY,
                                message="remind me to call 412 tomorrow at 10")
        stored = s.scalar(select(Task.due_at).where(Task.id == task.id))
        zone = followups.rep_timezone(s, REP3)
    assert (task.due_local, task.timezone) == (dt.datetime(2011, 12, 10, 10), "America/New_York")
    assert stored == dt.datetime(2011, 12, 10, 15)  # 10:00 in New York is 15:00 UTC
    assert zone == "Europe/London"  # rep 3 has none: the CRM's zone


def test_tomorrow_is_the_reps_real_tomorrow_not_the_data_as_of_date(url: str) -> None:
    with session_scope(url) as s:
        task = followups.remind(session=s, identity=REP2, number=412,
                                message="remind me to call 412 tomorrow at 10")
    today = followups.calendar_today("Europe/London")
    assert task.due_local == dt.datetime.combine(today + dt.timedelta(days=1), dt.time(10))


def test_done_with_the_call_closes_the_task(url: str) -> None:
    with session_scope(url) as s:
        task = followups.remind(session=s, identity=REP2, number=12347, today=DAY,
                                message="call customer 12347 monday", kind="customer")
    with session_scope(url) as s:
        done = followups.complete(session=s, identity=REP2, number=12347)
        with pytest.raises(followups.NotFound):
            followups.complete(session=s, identity=REP2, number=12347)
    assert isinstance(done, followups.TaskInfo) and done.id == task.id
    assert done.status == "done"


def test_due_reminders_go_to_the_reps_telegram_once(url: str, tmp_path: Path) -> None:
    outbox = create_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    with session_scope(url) as s:
        s.add(m.ChannelIdentity(sender_id="tg:5551", rep_id=2))
        followups.remind(session=s, identity=REP2, number=412, today=DAY,
                         message="call 412 tomorrow at 10")
        followups.remind(session=s, identity=REP2, number=410, today=DAY,
                         message="call 410 next week")
    before = dt.datetime(2011, 12, 10, 9, 59)
    at = dt.datetime(2011, 12, 10, 10, 0)
    with session_scope(url) as s:
        assert followups.send_due_reminders(s, before, outbox=outbox, bot_id="42") == 0
        assert followups.send_due_reminders(s, at, outbox=outbox, bot_id="42") == 1
        assert followups.send_due_reminders(s, at, outbox=outbox, bot_id="42") == 0
        reminded = s.scalars(select(Task.lead_id).where(Task.reminded_at.is_not(None))).all()
    with outbox.connect() as conn:
        rows = conn.execute(text("SELECT bot_id, chat_id, method, params FROM telegram_outbox"
                                 )).all()
    outbox.dispose()
    assert reminded == [412]
    assert [(r.bot_id, r.chat_id, r.method) for r in rows] == [("42", 5551, "sendMessage")]
    assert "lead 412" in json.loads(rows[0].params)["text"]
