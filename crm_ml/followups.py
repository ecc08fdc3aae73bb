"""Follow-ups: a rep's tasks ("remind me to call lead 49498 tomorrow at 10"), their list,
their completion, and the Telegram reminder when one falls due.

Due times are read in the rep's time zone (``sales_reps.timezone``, else the CRM's
:attr:`crm_ml.config.Settings.timezone`; :func:`rep_timezone`) and stored as naive UTC.
"Tomorrow at 10" counts from the calendar day in that zone, not from the as-of date of
the data questions (:mod:`crm_ml.asof`): a reminder is for the rep's real tomorrow, so
that on demo data ending in 2011 it is not due at once. Every write is audited and can
be undone in its conversation (:mod:`crm_ml.undo`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from crm_ml import authz
from crm_ml.audit import audit, utcnow
from crm_ml.config import get_settings
from crm_ml.contract import TELEGRAM_PREFIX
from crm_ml.db import models as m
from crm_ml.db.models_sales import Task
from crm_ml.db.outbox import outbox_table
from crm_ml.errors import NotFound
from crm_ml.identity import Identity
from crm_ml.sales.common import Target
from crm_ml.sales.targets import NeedsChoice, aim
from crm_ml.undo import remember

__all__ = [
    "Due",
    "TaskInfo",
    "complete",
    "complete_task",
    "create_task",
    "due_tasks",
    "list_tasks",
    "my_followups",
    "calendar_today",
    "parse_due",
    "rep_timezone",
    "remind",
    "send_due_reminders",
    "task_kind",
]

logger = logging.getLogger(__name__)

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RE = re.compile(
    r"\b(?:at|@|by|around|before)\s*(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
    r"|\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)|\b(\d{1,2})[:.](\d{2})\b",
    re.IGNORECASE)
_IN_RE = re.compile(
    r"\bin\s+(\d{1,3}|an?|one|two|three)\s+(minutes?|mins?|hours?|hrs?|days?|weeks?)\b",
    re.IGNORECASE)
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
DEFAULT_HOUR = 9


@dataclass(frozen=True)
class Due:
    """When a task falls due: local time in the rep's zone, and its UTC twin."""

    local: dt.datetime
    utc: dt.datetime
    timezone: str
    said: bool  # False: no day or time in the message (defaulted)

    @property
    def words(self) -> str:
        """"Tuesday 6 December 2011 at 10:00 (Europe/London)"."""
        return (f"{self.local:%A} {self.local.day} {self.local:%B %Y} at {self.local:%H:%M} "
                f"({self.timezone})")


def parse_due(message: str, *, today: dt.date, now: dt.datetime | None = None,
              timezone: str | None = None) -> Due:
    """The due time a message names: "tomorrow at 10", "monday 3pm", "in 2 hours",
    "next week", "friday"; 9:00 on the next working day when it names none.

    Args:
        message: The rep's words.
        today: The day "today" and "tomorrow" count from (the rep's calendar day).
        now: The local time of day "in 2 hours" counts from (default 9:00 of ``today``).
        timezone: IANA zone of the rep (default: the settings' zone).
    """
    zone = timezone or get_settings().timezone
    words = (message or "").lower()
    base = now or dt.datetime.combine(today, dt.time(DEFAULT_HOUR))
    said = True
    within = _IN_RE.search(words)
    if within:
        amount = _WORD_NUMBERS.get(within.group(1), None)
        count = amount if amount is not None else int(within.group(1))
        unit = within.group(2)
        delta = (dt.timedelta(minutes=count) if unit.startswith("min") else
                 dt.timedelta(hours=count) if unit.startswith(("hour", "hr")) else
                 dt.timedelta(days=count) if unit.startswith("day") else
                 dt.timedelta(weeks=count))
        local = base + delta
    else:
        day = _day_of(words, today)
        if day is None:
            said = False
            day = today + dt.timedelta(days=1)
            while day.weekday() >= 5:
                day += dt.timedelta(days=1)
        clock = _time_of(words)
        if clock is not None:
            said = True
        local = dt.datetime.combine(day, clock or dt.time(DEFAULT_HOUR))
    aware = local.replace(tzinfo=ZoneInfo(zone))
    utc = aware.astimezone(dt.UTC).replace(tzinfo=None)
    return Due(local=local, utc=utc, timezone=zone, said=said)


def _day_of(words: str, today: dt.date) -> dt.date | None:
    if re.search(r"\b(?:tomorrow|tmrw|tmr|tomorow)\b", words):
        return today + dt.timedelta(days=1)
    if re.search(r"\b(?:today|tonight|this (?:afternoon|evening|morning))\b", words):
        return today
    if re.search(r"\bnext week\b", words):
        return today + dt.timedelta(days=7 - today.weekday())
    for index, name in enumerate(_DAYS):
        if re.search(rf"\b(?:{name}|{name[:3]})\b", words):
            ahead = (index - today.weekday()) % 7 or 7
            return today + dt.timedelta(days=ahead)
    return None


def _time_of(words: str) -> dt.time | None:
    if re.search(r"\bnoon\b|\bmidday\b", words):
        return dt.time(12)
    for match in _TIME_RE.finditer(words):
        groups = match.groups()
        hour_s, minute_s, half = next(
            (groups[i], groups[i + 1], groups[i + 2] if i < 6 else None)
            for i in (0, 3, 6) if groups[i] is not None)
        hour, minute = int(hour_s), int(minute_s or 0)
        half = (half or "").replace(".", "")
        if half == "pm" and hour < 12:
            hour += 12
        elif half == "am" and hour == 12:
            hour = 0
        elif not half and 1 <= hour <= 7:
            hour += 12  # "at 3": business hours, the afternoon
        if 0 <= hour <= 23 and 0 <= minute <= 59:
            return dt.time(hour, minute)
    return None


def task_kind(message: str) -> str:
    """``call``, ``email``, ``meeting`` or ``todo`` from the words of the request."""
    words = (message or "").lower()
    if re.search(r"\b(?:call|ring|phone)\b", words):
        return "call"
    if re.search(r"\b(?:e-?mail|mail|write to)\b", words):
        return "email"
    if re.search(r"\b(?:meet|meeting|visit)\b", words):
        return "meeting"
    return "todo"


@dataclass(frozen=True)
class TaskInfo:
    """A follow-up as a rep sees it."""

    id: int
    kind: str
    title: str
    due_local: dt.datetime
    timezone: str
    status: str
    lead_id: int | None
    customer_id: int | None

    @property
    def about(self) -> str:
        """"lead 49498" / "customer 12347" / "no lead or customer"."""
        if self.lead_id is not None:
            return f"lead {self.lead_id}"
        if self.customer_id is not None:
            return f"customer {self.customer_id}"
        return "no lead or customer"


def _info(task: Task) -> TaskInfo:
    local = task.due_at.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(task.timezone))
    return TaskInfo(task.id, task.kind, task.title, local.replace(tzinfo=None), task.timezone,
                    task.status, task.lead_id, task.customer_id)


def calendar_today(zone: str) -> dt.date:
    """Today's date on the calendar in ``zone`` (follow-ups are real-world appointments)."""
    return dt.datetime.now(ZoneInfo(zone)).date()


def rep_timezone(session: Session, identity: Identity) -> str:
    """The caller's time zone: their own (``sales_reps.timezone``), else the CRM's."""
    zone = session.scalar(select(m.SalesRep.timezone).where(m.SalesRep.handle == identity.user))
    return zone or get_settings().timezone


def _rep_id(session: Session, identity: Identity) -> int:
    authz.require(identity, "leads.write")
    rep = session.scalar(select(m.SalesRep.id).where(m.SalesRep.handle == identity.user))
    if rep is None:
        if identity.role == "rep" and identity.number is not None:
            return identity.number
        raise NotFound("sales rep")
    return int(rep)


def create_task(*, session: Session, identity: Identity, target: Target, message: str,
                due: Due, sender_id: str | None = None) -> TaskInfo:
    """A follow-up on one of the caller's leads or accounts (``target`` from
    :func:`crm_ml.sales.resolve_number`), audited and undoable. The caller commits."""
    rep_id = _rep_id(session, identity)
    kind = task_kind(message)
    title = f"{kind} {target.kind} {target.id}, {target.name}"[:300]
    task = Task(rep_id=rep_id, kind=kind, title=title, due_at=due.utc, timezone=due.timezone,
                status="open", sender_id=(sender_id or "")[:128] or None, created_at=utcnow(),
                lead_id=target.id if target.kind == "lead" else None,
                customer_id=target.id if target.kind == "customer" else None)
    session.add(task)
    session.flush()
    audit(session=session, actor=identity.user, action="create_task", entity="tasks",
          entity_id=str(task.id), details={"kind": kind, target.kind + "_id": target.id,
                                           "due_at": due.utc.isoformat()})
    remember(session=session, sender_id=sender_id, actor=identity.user, action="create_task",
             entity="tasks", entity_id=task.id,
             summary=f"the follow-up to {kind} {target.kind} {target.id}")
    return _info(task)


def list_tasks(*, session: Session, identity: Identity, start: dt.datetime | None = None,
               end: dt.datetime | None = None, limit: int = 20) -> list[TaskInfo]:
    """The caller's open follow-ups due in [start, end) (naive UTC), soonest first."""
    rep_id = _rep_id(session, identity)
    query = select(Task).where(Task.rep_id == rep_id, Task.status == "open")
    if start is not None:
        query = query.where(Task.due_at >= start)
    if end is not None:
        query = query.where(Task.due_at < end)
    tasks = session.scalars(query.order_by(Task.due_at, Task.id).limit(limit)).all()
    return [_info(t) for t in tasks]


def due_tasks(*, session: Session, identity: Identity, now: dt.datetime) -> list[TaskInfo]:
    """The caller's open follow-ups due by ``now`` (naive UTC)."""
    return list_tasks(session=session, identity=identity, end=now + dt.timedelta(seconds=1),
                      limit=100)


def complete_task(*, session: Session, identity: Identity, target: Target | None,
                  sender_id: str | None = None) -> TaskInfo:
    """Mark done the caller's soonest open follow-up on ``target`` (any target: the soonest).

    Raises:
        NotFound: no open follow-up on that lead or customer.
    """
    rep_id = _rep_id(session, identity)
    query = select(Task).where(Task.rep_id == rep_id, Task.status == "open")
    if target is not None:
        column = Task.lead_id if target.kind == "lead" else Task.customer_id
        query = query.where(column == target.id)
    task = session.scalars(query.order_by(Task.due_at, Task.id).limit(1)).first()
    if task is None:
        raise NotFound("follow-up")
    task.status, task.done_at = "done", utcnow()
    audit(session=session, actor=identity.user, action="complete_task", entity="tasks",
          entity_id=str(task.id), details={})
    remember(session=session, sender_id=sender_id, actor=identity.user,
             action="complete_task", entity="tasks", entity_id=task.id,
             summary=f"marking done the follow-up to {task.title}")
    return _info(task)


def send_due_reminders(session: Session, now: dt.datetime, *, outbox: Engine | None = None,
                       bot_id: str | None = None) -> int:
    """Queue a Telegram reminder for every open task due by ``now`` (naive UTC) whose rep
    is linked to Telegram (``channel_identities``), and mark it reminded so it is sent
    once. Tasks of reps without Telegram are marked too (the console lists them).

    Args:
        session: A CRM session (the caller commits; the tasks are flushed as reminded
            before the outbox is written, so a failed write leaves them unsent).
        now: The current time, naive UTC.
        outbox: The tracker store's database holding ``telegram_outbox`` (default: the
            settings' tracker database).
        bot_id: The Telegram bot the outbox belongs to (default: the token's number).

    Returns:
        How many reminders were queued.
    """
    tasks = session.scalars(select(Task).where(
        Task.status == "open", Task.reminded_at.is_(None), Task.due_at <= now)
        .order_by(Task.due_at, Task.id)).all()
    if not tasks:
        return 0
    chats: dict[int, list[int]] = {}
    for sender, rep_id in session.execute(select(
            m.ChannelIdentity.sender_id, m.ChannelIdentity.rep_id).where(
            m.ChannelIdentity.rep_id.is_not(None),
            m.ChannelIdentity.sender_id.like(TELEGRAM_PREFIX + "%"))):
        try:
            chats.setdefault(int(rep_id), []).append(int(sender[len(TELEGRAM_PREFIX):]))
        except ValueError:
            continue
    rows = []
    for task in tasks:
        info = _info(task)
        message = (f"Reminder: {task.title}, due {info.due_local:%A %d %B at %H:%M}. "
                   "Say \"done with the call to "
                   f"{task.lead_id or task.customer_id}\" when it's done.")
        for chat in chats.get(task.rep_id, []):
            rows.append({"chat_id": chat, "text": message})
        task.reminded_at = now
    session.flush()
    queued = _queue(rows, outbox, bot_id) if rows else 0
    logger.info("follow-ups: %d due, %d reminders queued", len(tasks), queued)
    return queued


def _queue(rows: list[dict[str, object]], outbox: Engine | None, bot_id: str | None) -> int:
    settings = get_settings()
    engine = outbox
    own = False
    if engine is None:
        url = getattr(settings, "tracker_db_url", None)
        if not url:
            logger.warning("follow-ups: no tracker database, reminders not queued")
            return 0
        engine, own = create_engine(url), True
    bot = bot_id or (getattr(settings, "telegram_token", None) or "0").split(":")[0]
    table = outbox_table()
    try:
        with engine.begin() as conn:
            table.create(conn, checkfirst=True)
            conn.execute(table.insert(), [
                {"bot_id": bot, "chat_id": row["chat_id"], "method": "sendMessage",
                 "params": json.dumps({"text": row["text"]}), "created_at": time.time()}
                for row in rows])
    finally:
        if own:
            engine.dispose()
    return len(rows)


def remind(*, session: Session, identity: Identity, number: int, message: str,
           today: dt.date | None = None, kind: str | None = None, sender_id: str | None = None
           ) -> TaskInfo | NeedsChoice:
    """"Remind me to call 49498 tomorrow at 10": a task on what ``number`` means among
    the caller's leads and accounts (:func:`crm_ml.sales.aim`); nothing when unclear."""
    target = aim(session, identity, number, kind)
    if isinstance(target, NeedsChoice):
        return target
    zone = rep_timezone(session, identity)
    if today is None:  # the rep's real clock: "in 2 hours" from now
        now = dt.datetime.now(ZoneInfo(zone)).replace(tzinfo=None, second=0, microsecond=0)
        due = parse_due(message, today=now.date(), now=now, timezone=zone)
    else:
        due = parse_due(message, today=today, timezone=zone)
    return create_task(session=session, identity=identity, target=target, message=message,
                       due=due, sender_id=sender_id)


def complete(*, session: Session, identity: Identity, number: int | None = None,
             kind: str | None = None, sender_id: str | None = None
             ) -> TaskInfo | NeedsChoice:
    """"Done with the call to 49498": the soonest open follow-up on it marked done.

    Raises:
        NotFound: no open follow-up there.
    """
    target: Target | None = None
    if number is not None:
        aimed = aim(session, identity, number, kind)
        if isinstance(aimed, NeedsChoice):
            return aimed
        target = aimed
    return complete_task(session=session, identity=identity, target=target,
                         sender_id=sender_id)


def my_followups(*, session: Session, identity: Identity, today: dt.date | None = None,
                 span: str = "week") -> list[TaskInfo]:
    """The caller's open follow-ups for ``span``: ``"today"``, ``"week"`` (today to the
    coming Sunday) or ``"all"``; overdue ones come first in every span."""
    zone = ZoneInfo(rep_timezone(session, identity))
    today = today or calendar_today(zone.key)
    if span == "today":
        last = today
    elif span == "week":
        last = today + dt.timedelta(days=6 - today.weekday())
    else:
        return list_tasks(session=session, identity=identity, limit=50)
    end_local = dt.datetime.combine(last + dt.timedelta(days=1), dt.time())
    end = end_local.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)
    return list_tasks(session=session, identity=identity, end=end, limit=50)
