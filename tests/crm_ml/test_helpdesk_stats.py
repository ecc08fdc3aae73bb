"""Helpdesk figures: known answers on a seeded set of conversations."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_ml import helpdesk_stats as hs
from crm_ml import inbox as crm_inbox
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.db.models_helpdesk import ConversationRating

T = dt.datetime(2026, 3, 1)


def at(day: int, hour: int, minute: int) -> dt.datetime:
    return T.replace(day=day, hour=hour, minute=minute)


def msg(sender: str, channel: str, when: dt.datetime, direction: str = "in",
        kind: str = "message") -> m.Interaction:
    return m.Interaction(sender_id=sender, channel=channel, direction=direction, kind=kind,
                         text="hello", created_at=when)


def esc(sender: str, channel: str, opened: dt.datetime,
        resolved: dt.datetime | None = None) -> m.Escalation:
    return m.Escalation(sender_id=sender, channel=channel, reason="asked for a human",
                        status="resolved" if resolved else "ticket", created_at=opened,
                        resolved_at=resolved, transcript=[], sentiment_history=[], context={})


def seed(url: str) -> str:
    """Six conversations on two days and two channels; three needed a human."""
    with session_scope(url) as s:
        s.add_all([
            # 1 March: a contained web chat, a web escalation answered in 8 min and
            # resolved in 30, a Telegram one answered in 4 and resolved in 60.
            msg("web:a", "web", at(1, 10, 0)), msg("web:a", "web", at(1, 10, 1), "out"),
            msg("web:b", "web", at(1, 10, 10)), esc("web:b", "web", at(1, 10, 12), at(1, 10, 42)),
            msg("web:b", "web", at(1, 10, 20), "out", "agent"),
            msg("web:b", "web", at(1, 10, 25), "out", "agent"),
            msg("tg:c", "telegram", at(1, 11, 0)),
            esc("tg:c", "telegram", at(1, 11, 1), at(1, 12, 1)),
            msg("tg:c", "telegram", at(1, 11, 5), "out", "agent"),
            # 2 March: two contained, one Telegram ticket nobody has answered yet
            # (an agent's message from before the escalation does not count).
            msg("web:d", "web", at(2, 9, 0)), msg("tg:e", "telegram", at(2, 9, 30)),
            msg("tg:f", "telegram", at(2, 9, 40)),
            msg("tg:f", "telegram", at(2, 9, 40), "out", "agent"),
            esc("tg:f", "telegram", at(2, 9, 41)),
            # Staff asking the bot, and a bot-only greeting, are not customer conversations.
            m.SalesRep(id=1, handle="rep:1", name="Rita Rep", email="r@x", role="rep"),
        ])
        s.flush()
        s.add(m.ChannelIdentity(sender_id="tg:manager", rep_id=1))
        rep = msg("tg:rep", "telegram", at(1, 9, 0))
        rep.rep_id = 1
        s.add_all([rep, msg("tg:rep", "telegram", at(1, 9, 1), "out"),
                   msg("tg:manager", "telegram", at(1, 9, 2)),
                   msg("web:nobody", "web", at(1, 9, 3), "out")])
    return url


@pytest.fixture
def seeded(sqlite_url: str) -> str:
    return seed(sqlite_url)


def ratings(url: str, rows: list[tuple[str, str, int, dt.datetime]]) -> None:
    with session_scope(url) as s:
        s.add_all([ConversationRating(sender_id=sender, channel=channel, score=score,
                                      created_at=when) for sender, channel, score, when in rows])


def test_overall_figures_have_the_known_answers(seeded: str) -> None:
    with session_scope(seeded) as s:
        stats = hs.helpdesk_stats(session=s)
    o = stats.overall
    assert (o.conversations, o.escalated, o.answered, o.resolved) == (6, 3, 2, 2)
    assert o.escalation_rate == pytest.approx(0.5)
    assert o.containment_rate == pytest.approx(0.5)
    assert o.first_response_median_min == pytest.approx(6.0)  # 8 and 4 minutes
    assert o.resolution_median_min == pytest.approx(45.0)  # 30 and 60 minutes
    assert o.csat is None and o.ratings == 0 and stats.ratings_store is True


def test_per_day_and_per_channel(seeded: str) -> None:
    with session_scope(seeded) as s:
        stats = hs.helpdesk_stats(session=s)
    days = {f.key: f for f in stats.per_day}
    assert list(days) == ["2026-03-01", "2026-03-02"]
    assert (days["2026-03-01"].conversations, days["2026-03-01"].escalated) == (3, 2)
    assert days["2026-03-01"].containment_rate == pytest.approx(1 / 3)
    assert days["2026-03-02"].escalation_rate == pytest.approx(1 / 3)
    assert days["2026-03-02"].first_response_median_min is None  # nobody answered yet
    channels = {f.key: f for f in stats.per_channel}
    assert channels["web"].escalated == 1 and channels["telegram"].escalated == 2
    assert channels["web"].first_response_median_min == pytest.approx(8.0)
    assert channels["telegram"].first_response_median_min == pytest.approx(4.0)
    assert channels["telegram"].resolution_mean_min == pytest.approx(60.0)
    assert channels["telegram"].containment_rate == pytest.approx(1 / 3)


def test_since_and_days_limit_the_figures(seeded: str) -> None:
    with session_scope(seeded) as s:
        later = hs.helpdesk_stats(session=s, since=at(2, 0, 0))
        last = hs.helpdesk_stats(session=s, days=1)
    assert (later.overall.conversations, later.overall.escalated) == (3, 1)
    assert [f.key for f in last.per_day] == ["2026-03-02"]
    assert last.overall.conversations == 6


def test_csat_from_the_rating_store(seeded: str) -> None:
    ratings(seeded, [("web:b", "web", 5, at(1, 10, 45)), ("tg:c", "telegram", 2, at(1, 12, 5)),
                     ("tg:f", "telegram", 4, at(2, 10, 0))])
    with session_scope(seeded) as s:
        stats = hs.helpdesk_stats(session=s)
    assert stats.ratings_store is True
    assert (stats.overall.ratings, stats.overall.satisfied) == (3, 2)
    assert stats.overall.csat == pytest.approx(2 / 3)
    channels = {f.key: f for f in stats.per_channel}
    assert channels["web"].csat == pytest.approx(1.0)
    assert channels["telegram"].csat == pytest.approx(0.5)
    assert {f.key: f.ratings for f in stats.per_day} == {"2026-03-01": 2, "2026-03-02": 1}


def test_report_section_says_when_nobody_rated(seeded: str) -> None:
    with session_scope(seeded) as s:
        section = hs.report_section(session=s)
    assert section["overall"]["containment_rate"] == pytest.approx(0.5)
    assert section["overall"]["csat"] is None
    assert section["note"] == "no ratings yet"
    assert [d["key"] for d in section["per_day"]] == ["2026-03-01", "2026-03-02"]


def test_empty_crm_has_no_rates(sqlite_url: str) -> None:
    with session_scope(sqlite_url) as s:
        stats = hs.helpdesk_stats(session=s)
    assert stats.overall.conversations == 0
    assert stats.overall.escalation_rate is None and stats.per_day == []


@pytest.mark.postgres
def test_same_answers_on_postgresql(pg_url: str) -> None:
    seed(pg_url)
    ratings(pg_url, [("web:b", "web", 5, at(1, 10, 45)), ("tg:c", "telegram", 2, at(1, 12, 5))])
    with session_scope(pg_url) as s:
        stats = hs.helpdesk_stats(session=s)
        threads = crm_inbox.list_threads(session=s, status="all", now=at(2, 10, 41))
    o = stats.overall
    assert (o.conversations, o.escalated, o.answered, o.resolved) == (6, 3, 2, 2)
    assert o.first_response_median_min == pytest.approx(6.0)
    assert o.resolution_median_min == pytest.approx(45.0)
    assert o.csat == pytest.approx(0.5)
    assert [f.key for f in stats.per_day] == ["2026-03-01", "2026-03-02"]
    # The inbox's SQL on PostgreSQL too: tg:f waits (its agent message came before).
    assert [(r["sender_id"], r["status"]) for r in threads.rows] == [
        ("tg:f", "waiting"), ("tg:c", "resolved"), ("web:b", "resolved")]
    assert threads.rows[0]["waiting_minutes"] == 60
