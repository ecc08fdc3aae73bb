"""crm_ml.sales: what reps and managers may see and change, on a small hand-made CRM."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_ml import charts, sales
from crm_ml.authz import Forbidden
from crm_ml.db import migrate
from crm_ml.db import models as m
from crm_ml.db.session import get_engine, session_scope
from crm_ml.identity import ANONYMOUS, Identity

REP2 = Identity("rep", 2)
REP3 = Identity("rep", 3)
MANAGER = Identity("manager", 1)
AGENT = Identity("agent", 1)
CUSTOMER = Identity("customer", 12347)
FORECAST_START = dt.date(2011, 12, 12)

HOT_REASONS = [
    {"text": "previous campaign succeeded", "effect": "raises", "weight": 1.2},
    {"text": "contacted 3 times this campaign", "effect": "raises", "weight": 0.6},
    {"text": "called on a Monday", "effect": "lowers", "weight": -0.1},
]


def seed_crm(url: str) -> None:
    """A tiny CRM: reps 1-3 under manager:1, rep 9 under nobody, leads, accounts, scores.

    Leads (owner, status, score): 410 (rep 2, new, 35%), 411 (rep 3, new, 95%),
    412 Ben Carter (rep 2, contacted, 87%), 413 (rep 2, won, 90%), 414 (rep 2, lost),
    415 and 416 both "Olivia Smith" (rep 2, 20% and 60%), 417 "Olivia Smith" (rep 3),
    418 (rep 9, new, 99%).
    Accounts: 12347 and 12349 (rep 2), 12348 (rep 3), 12350 (rep 1).
    """
    with session_scope(url) as s:
        s.add(m.SalesRep(id=101, handle="manager:1", name="Maria Lopez", email="m@example.com",
                         role="manager", manager_id=None))
        s.flush()
        for i, name in [(1, "Alice Morgan"), (2, "Ben Carter"), (3, "Chloe Park")]:
            s.add(m.SalesRep(id=i, handle=f"rep:{i}", name=name, email=f"r{i}@example.com",
                             role="rep", manager_id=101))
        s.add(m.SalesRep(id=9, handle="rep:9", name="Ian Solo", email="r9@example.com",
                         role="rep", manager_id=None))
        s.flush()
        for cid, name, rep in [(12347, "Acme Gifts", 2), (12348, "Bolt Ltd", 3),
                               (12349, "Cove Crafts", 2), (12350, "Dune Home", 1)]:
            s.add(m.Customer(id=cid, name=name, email=f"{cid}@example.com", country="France"))
            s.flush()
            s.add(m.Account(customer_id=cid, rep_id=rep, name=name))
        for code, desc, price in [("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2.95),
                                  ("22423", "REGENCY CAKESTAND 3 TIER", 12.75),
                                  ("84879", "ASSORTED COLOUR BIRD ORNAMENT", 1.69),
                                  ("47566", "PARTY BUNTING", 4.95)]:
            s.add(m.Product(stock_code=code, description=desc, unit_price=price))
        leads = [(410, "Amy Bell", 2, "new", "bank_marketing"),
                 (411, "Noah Brown", 3, "new", "bank_marketing"),
                 (412, "Ben Carter", 2, "contacted", "x_education"),
                 (413, "Cara Dunn", 2, "won", "bank_marketing"),
                 (414, "Dev Eng", 2, "lost", "bank_marketing"),
                 (415, "Olivia Smith", 2, "new", "x_education"),
                 (416, "Olivia Smith", 2, "qualified", "x_education"),
                 (417, "Olivia Smith", 3, "new", "x_education"),
                 (418, "Far Away", 9, "new", "bank_marketing")]
        for lid, name, rep, status, source in leads:
            s.add(m.Lead(id=lid, source=source, external_ref=str(lid), name=name, rep_id=rep,
                         status=status, features={}, converted=lid in (413, 416)))
        s.flush()
        for lid, score, reasons in [(410, 0.35, ["age 35", "no previous contact"]),
                                    (411, 0.95, ["previous campaign succeeded"]),
                                    (412, 0.873, HOT_REASONS), (413, 0.90, []),
                                    (415, 0.20, []), (416, 0.60, []), (418, 0.99, [])]:
            s.add(m.LeadScore(lead_id=lid, score=score, reasons=reasons, model_version="t1"))
        for cid, p, reasons in [
            (12347, 0.82, [{"text": "no purchase for 140 days", "effect": "raises"},
                           {"text": "orders becoming rarer", "effect": "raises"},
                           {"text": "customer for 20 months", "effect": "lowers"}]),
            (12349, 0.30, ["steady ordering"]), (12348, 0.99, [])]:
            s.add(m.ChurnScore(customer_id=cid, probability=p, reasons=reasons,
                               model_version="t1"))
        for cid, seg, rec, freq, mon, cluster in [
                (12347, "Champions", 2, 7, 4310.0, (2, "Big regulars")),
                (12348, "Champions", 5, 12, 9800.0, (2, "Big regulars")),
                (12349, "At Risk", 180, 4, 1250.0, (0, None)),
                (12350, "Hibernating", 300, 1, 90.0, (1, "One-offs"))]:
            s.add(m.Segment(customer_id=cid, recency_days=rec, frequency=freq, monetary=mon,
                            r_score=5 if rec < 10 else 1, f_score=4, m_score=5,
                            rfm_segment=seg, cluster=cluster[0], cluster_name=cluster[1],
                            model_version="t1"))
        for cid, seg, rank, code, source in [(12347, None, 2, "22423", "item_cf"),
                                             (12347, None, 1, "85123A", "item_cf"),
                                             (None, "At Risk", 1, "84879", "segment"),
                                             (None, None, 1, "47566", "popularity"),
                                             (None, None, 2, "22423", "popularity")]:
            s.add(m.Recommendation(customer_id=cid, segment=seg, rank=rank, stock_code=code,
                                   score=1.0 / rank, source=source, model_version="t1"))
        old = dt.datetime(2011, 12, 1)
        new = dt.datetime(2011, 12, 10)
        for k in range(14):
            day = FORECAST_START + dt.timedelta(weeks=k)
            s.add(m.Forecast(series="total", period_start=day, yhat=1.0, lower=0.5, upper=1.5,
                             model_version="v1", created_at=old))
            s.add(m.Forecast(series="total", period_start=day, yhat=100_000.0 + 1_000 * k,
                             lower=80_000.0 + 1_000 * k, upper=130_000.0 + 1_000 * k,
                             model_version="v2", created_at=new))
        s.add(m.Forecast(series="segment:Champions", period_start=FORECAST_START, yhat=5000.0,
                         lower=4000.0, upper=6000.0, model_version="v2", created_at=new))
        # History: sales in the weeks before the forecast (one cancellation, ignored).
        for n, (days_before, total, kind) in enumerate(
                [(1, 500.0, "sale"), (3, 250.0, "sale"), (8, 1000.0, "sale"),
                 (2, -300.0, "cancellation")]):
            when = dt.datetime.combine(FORECAST_START - dt.timedelta(days=days_before),
                                       dt.time(10, 30))
            s.add(m.Order(id=f"5800{n}", customer_id=12347, invoiced_at=when, country="France",
                          kind=kind, status="delivered", total=total))
    get_engine(url).dispose()


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded CRM, built once per module; tests work on copies."""
    path = tmp_path_factory.mktemp("sales") / "template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    seed_crm(url)
    return path


@pytest.fixture
def url(template_db: Path, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "crm.db"
    shutil.copy(template_db, path)
    db_url = f"sqlite:///{path}"
    yield db_url
    get_engine(db_url).dispose()


# ------------------------------------------------------------------- validation


@pytest.mark.parametrize("value,expected", [
    ("412", 412), (" #412 ", 412), (412, 412), ("12,347", 12347), ("0", None), ("-3", None),
    ("4x", None), ("", None), (None, None), (True, None), ("１２", None),
    ("1000000000", None), (str(sales.MAX_ID), sales.MAX_ID), (sales.MAX_ID + 1, None),
])
def test_parse_id_accepts_positive_whole_numbers_only(value: object, expected: int | None) -> None:
    assert sales.parse_id(value) == expected


def test_parse_status_and_segments() -> None:
    assert sales.parse_status(" Qualified ") == "qualified"
    assert sales.parse_status("closed") is None
    assert sales.parse_status(None) is None
    assert sales.canonical_segment("champion") == "Champions"
    assert sales.canonical_segment("cannot lose them") == "Can't Lose"
    assert sales.canonical_segment("Can’t Lose") == "Can't Lose"
    assert sales.canonical_segment("loyal customers") == "Loyal"
    assert sales.canonical_segment("AT-RISK") == "At Risk"
    assert sales.canonical_segment("vip") is None
    assert sales.interaction_kind("log a call with lead 88") == "call"
    assert sales.interaction_kind("note: sent the brochure to lead 88") == "note"


def test_reasons_accept_strings_and_dicts() -> None:
    assert sales.reasons_of(["a", {"text": "b", "effect": "lowers"}, {"x": 1}, 3, " "]) == [
        sales.Reason("a"), sales.Reason("b", "lowers")]
    assert sales.reasons_of(None) == []


# ------------------------------------------------------------------------ leads


def test_hot_leads_are_the_reps_own_open_leads_best_first(url: str) -> None:
    with session_scope(url) as s:
        leads = sales.hot_leads(session=s, identity=REP2)
    # 413 is won (closed), 411 and 418 belong to other reps, 414 has no score.
    assert [lead.id for lead in leads] == [412, 416, 410, 415]
    assert leads[0].reasons[0] == sales.Reason("previous campaign succeeded", "raises")
    assert leads[0].rep_name == "Ben Carter"


def test_a_manager_sees_the_team_but_not_other_teams(url: str) -> None:
    with session_scope(url) as s:
        leads = sales.hot_leads(session=s, identity=MANAGER, limit=3)
    assert [lead.id for lead in leads] == [411, 412, 416]  # 418 is rep 9's: not the team


@pytest.mark.parametrize("who", [ANONYMOUS, CUSTOMER, AGENT])
def test_non_sales_roles_see_no_leads(url: str, who: Identity) -> None:
    with session_scope(url) as s, pytest.raises(Forbidden):
        sales.hot_leads(session=s, identity=who)


def test_another_reps_lead_looks_like_no_lead(url: str) -> None:
    with session_scope(url) as s:
        with pytest.raises(sales.LeadNotFound) as other:
            sales.explain_lead(session=s, identity=REP2, lead_id=411)
        with pytest.raises(sales.LeadNotFound) as missing:
            sales.explain_lead(session=s, identity=REP2, lead_id=99999)
        assert sales.explain_lead(session=s, identity=REP3, lead_id=411).score == 0.95
    assert str(other.value).replace("411", "N") == str(missing.value).replace("99999", "N")


def test_find_lead_by_name(url: str) -> None:
    with session_scope(url) as s:
        assert sales.find_lead(session=s, identity=REP2, lead_name="ben  carter").id == 412
        with pytest.raises(sales.AmbiguousLead) as many:
            sales.find_lead(session=s, identity=REP2, lead_name="Olivia Smith")
        assert sales.find_lead(session=s, identity=REP3, lead_name="olivia smith").id == 417
        with pytest.raises(sales.LeadNotFound):
            sales.find_lead(session=s, identity=REP2, lead_name="Noah Brown")  # rep 3's
    # Rep 2's two Olivias only, best score first; rep 3's is not mentioned.
    assert many.value.candidates == [(416, "qualified"), (415, "new")]
    assert many.value.count == 2


def test_update_status_writes_and_audits(url: str) -> None:
    with session_scope(url) as s:
        change = sales.update_lead_status(session=s, identity=REP2, lead_id=412,
                                          status="Qualified")
    assert (change.old, change.new, change.changed) == ("contacted", "qualified", True)
    with session_scope(url) as s:
        assert s.get(m.Lead, 412).status == "qualified"
        entry = s.scalars(select(m.AuditLog)).one()
        assert (entry.actor, entry.action, entry.entity, entry.entity_id, entry.details) == (
            "rep:2", "update_lead_status", "leads", "412", {"old": "contacted",
                                                            "new": "qualified"})
        again = sales.update_lead_status(session=s, identity=REP2, lead_id=412,
                                         status="qualified")
        assert not again.changed
    with session_scope(url) as s:
        assert len(s.scalars(select(m.AuditLog)).all()) == 1  # nothing new written


def test_update_status_refuses_bad_status_and_other_reps(url: str) -> None:
    with session_scope(url) as s:
        with pytest.raises(ValueError):
            sales.update_lead_status(session=s, identity=REP2, lead_id=412, status="closed")
        with pytest.raises(sales.LeadNotFound):
            sales.update_lead_status(session=s, identity=REP2, lead_id=411, status="won")
        with pytest.raises(Forbidden):
            sales.update_lead_status(session=s, identity=AGENT, lead_id=411, status="won")
    with session_scope(url) as s:
        assert s.get(m.Lead, 411).status == "new"
        assert s.scalars(select(m.AuditLog)).all() == []


def test_a_manager_may_update_a_team_lead(url: str) -> None:
    with session_scope(url) as s:
        change = sales.update_lead_status(session=s, identity=MANAGER, lead_id=411,
                                          status="won")
        assert change.changed
        with pytest.raises(sales.LeadNotFound):
            sales.update_lead_status(session=s, identity=MANAGER, lead_id=418, status="won")


def test_log_interaction_writes_a_call_with_audit_once(url: str) -> None:
    with session_scope(url) as s:
        logged = sales.log_interaction(session=s, identity=REP2, text="Called lead 412, no answer",
                                       sender_id="web:r2", channel="web", lead_id=412,
                                       event_id="rep-log:m1")
    assert (logged.kind, logged.lead.id, logged.duplicate) == ("call", 412, False)
    with session_scope(url) as s:
        again = sales.log_interaction(session=s, identity=REP2, text="Called lead 412, no answer",
                                      sender_id="web:r2", channel="web", lead_id=412,
                                      event_id="rep-log:m1")
        assert again.duplicate and again.id == logged.id
    with session_scope(url) as s:
        row = s.scalars(select(m.Interaction)).one()
        assert (row.kind, row.rep_id, row.lead_id, row.customer_id, row.text, row.direction) == (
            "call", 2, 412, None, "Called lead 412, no answer", "out")
        entry = s.scalars(select(m.AuditLog)).one()
        assert (entry.action, entry.entity, entry.entity_id) == (
            "log_interaction", "interactions", str(row.id))
        assert entry.details == {"kind": "call", "lead_id": 412, "customer_id": None}


def test_log_a_note_on_an_account(url: str) -> None:
    with session_scope(url) as s:
        logged = sales.log_interaction(session=s, identity=REP2, text="sent the catalogue",
                                       sender_id="web:r2", channel="web", customer_id=12347)
        assert (logged.kind, logged.customer_name, logged.lead) == ("note", "Acme Gifts", None)
        with pytest.raises(sales.CustomerNotFound):
            sales.log_interaction(session=s, identity=REP2, text="x", sender_id="web:r2",
                                  channel="web", customer_id=12348)
        with pytest.raises(ValueError):
            sales.log_interaction(session=s, identity=REP2, text="x", sender_id="web:r2",
                                  channel="web")


def test_pipeline_summary(url: str) -> None:
    with session_scope(url) as s:
        mine = sales.pipeline_summary(session=s, identity=REP2)
        team = sales.pipeline_summary(session=s, identity=MANAGER)
    assert [(c.status, c.leads) for c in mine.statuses] == [
        ("new", 2), ("contacted", 1), ("qualified", 1), ("won", 1), ("lost", 1)]
    assert mine.total == 6 and mine.won == 1 and mine.lost == 1 and mine.win_rate == 0.5
    assert mine.converted_on_record == 2
    assert mine.count("new").avg_score == pytest.approx((0.35 + 0.20) / 2)
    assert mine.open_avg_score == pytest.approx((0.35 + 0.873 + 0.20 + 0.60) / 4)
    assert mine.avg_score == pytest.approx((0.35 + 0.873 + 0.90 + 0.20 + 0.60) / 5)
    assert team.total == 8 and team.scope == "team"  # rep 9's lead 418 is not the team's


# --------------------------------------------------------------------- accounts


def test_churn_risks_of_the_reps_accounts(url: str) -> None:
    with session_scope(url) as s:
        mine = sales.churn_risks(session=s, identity=REP2)
        everyone = sales.churn_risks(session=s, identity=AGENT)
        one = sales.churn_risk(session=s, identity=REP2, customer_id=12347)
        with pytest.raises(sales.CustomerNotFound):
            sales.churn_risk(session=s, identity=REP2, customer_id=12348)
        unscored = sales.churn_risk(session=s, identity=Identity("rep", 1), customer_id=12350)
        with pytest.raises(Forbidden):
            sales.churn_risks(session=s, identity=CUSTOMER)
    # Only customers who bought can churn: 12348 and 12349 have scores but no order.
    assert [(r.customer_id, r.name) for r in mine] == [(12347, "Acme Gifts")]
    assert [r.customer_id for r in everyone] == [12347]
    assert one.reasons[0] == sales.Reason("no purchase for 140 days", "raises")
    assert unscored.probability is None


def test_accounts_that_never_ordered_are_a_separate_answer(url: str) -> None:
    with session_scope(url) as s:
        mine = sales.never_ordered(session=s, identity=REP2)
        team = sales.never_ordered(session=s, identity=MANAGER)
        with pytest.raises(Forbidden):
            sales.never_ordered(session=s, identity=CUSTOMER)
    assert mine == (1, [(12349, "Cove Crafts")])
    assert team == (3, [(12348, "Bolt Ltd"), (12349, "Cove Crafts"), (12350, "Dune Home")])


def test_hot_leads_honour_count_source_and_status(url: str) -> None:
    with session_scope(url) as s:
        one = sales.hot_leads(session=s, identity=REP2, limit=1)
        bank = sales.hot_leads(session=s, identity=REP2, source="bank_marketing")
        qualified = sales.hot_leads(session=s, identity=REP2, status="qualified")
    assert [lead.id for lead in one] == [412]
    assert [lead.id for lead in bank] == [410]
    assert [lead.id for lead in qualified] == [416]


def test_a_bare_number_is_resolved_against_the_callers_own_leads_and_accounts(url: str
                                                                                ) -> None:
    with session_scope(url) as s:
        lead = sales.aim(s, REP2, 412)
        account = sales.aim(s, REP2, 12347)
        someone_elses = sales.aim(s, REP2, 411)
        as_customer = sales.aim(s, REP2, 412, "customer")
    assert lead == sales.Target("lead", 412, "Ben Carter")
    assert account == sales.Target("customer", 12347, "Acme Gifts")
    assert someone_elses == sales.NeedsChoice(411, [])
    assert as_customer == sales.NeedsChoice(412, [])


def test_customer_segment(url: str) -> None:
    with session_scope(url) as s:
        seg = sales.customer_segment(session=s, identity=REP2, customer_id=12347)
        assert sales.customer_segment(session=s, identity=AGENT, customer_id=12348).segment \
            == "Champions"
        with pytest.raises(sales.CustomerNotFound):
            sales.customer_segment(session=s, identity=REP2, customer_id=12348)
        with pytest.raises(sales.CustomerNotFound):
            sales.customer_segment(session=s, identity=AGENT, customer_id=99999)
    assert (seg.segment, seg.recency_days, seg.frequency, seg.monetary, seg.cluster_name) == (
        "Champions", 2, 7, 4310.0, "Big regulars")


def test_segment_summary(url: str) -> None:
    with session_scope(url) as s:
        everything = sales.segment_summary(session=s, identity=REP2)
        champions = sales.segment_summary(session=s, identity=REP2, segment="champion")
        agent_view = sales.segment_summary(session=s, identity=AGENT, segment="Champions")
        with pytest.raises(ValueError):
            sales.segment_summary(session=s, identity=REP2, segment="vip")
        with pytest.raises(Forbidden):
            sales.segment_summary(session=s, identity=ANONYMOUS)
    assert everything.total_customers == 4
    assert [(x.segment, x.customers, x.yours) for x in everything.segments] == [
        ("Champions", 2, 1), ("At Risk", 1, 1), ("Hibernating", 1, 0)]
    (only,) = champions.segments
    assert (only.customers, only.avg_monetary, only.yours) == (2, 7055.0, 1)
    assert champions.top_accounts == [sales.TopAccount(12347, "Acme Gifts", 4310.0)]
    assert agent_view.segments[0].yours is None and agent_view.top_accounts == []


def test_segment_summary_without_segments(url: str) -> None:
    with session_scope(url) as s:
        s.query(m.Segment).delete()
    with session_scope(url) as s, pytest.raises(sales.NoData):
        sales.segment_summary(session=s, identity=REP2)


def test_recommendations_fall_back_from_customer_to_segment_to_popular(url: str) -> None:
    with session_scope(url) as s:
        own = sales.customer_recommendations(session=s, identity=REP2, customer_id=12347)
        segment = sales.customer_recommendations(session=s, identity=REP2, customer_id=12349)
        popular = sales.customer_recommendations(session=s, identity=Identity("rep", 1),
                                                 customer_id=12350)
        with pytest.raises(sales.CustomerNotFound):
            sales.customer_recommendations(session=s, identity=REP2, customer_id=12350)
    assert own.basis == "customer"
    assert [p.stock_code for p in own.products] == ["85123A", "22423"]
    assert own.products[0].description == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert (segment.basis, segment.segment, [p.stock_code for p in segment.products]) == (
        "segment", "At Risk", ["84879"])
    assert (popular.basis, [p.stock_code for p in popular.products]) == (
        "popular", ["47566", "22423"])


# -------------------------------------------------------------------- forecasts


def test_sales_forecast_sums_the_latest_version(url: str) -> None:
    with session_scope(url) as s:
        f = sales.sales_forecast(session=s, identity=REP2, weeks=13)
        short = sales.sales_forecast(session=s, identity=AGENT, weeks=52)
        seg = sales.sales_forecast(session=s, identity=MANAGER, weeks=4, segment="champion")
        fallback = sales.sales_forecast(session=s, identity=REP2, weeks=4, segment="lost")
        with pytest.raises(Forbidden):
            sales.sales_forecast(session=s, identity=CUSTOMER)
        with pytest.raises(ValueError):
            sales.sales_forecast(session=s, identity=REP2, weeks=53)
    assert f.model_version == "v2" and f.weeks == 13
    assert f.total == pytest.approx(sum(100_000 + 1_000 * k for k in range(13)))
    assert f.lower == pytest.approx(sum(80_000 + 1_000 * k for k in range(13)))
    assert f.upper == pytest.approx(sum(130_000 + 1_000 * k for k in range(13)))
    assert f.lowest_week.period_start == FORECAST_START
    assert f.highest_week.period_start == FORECAST_START + dt.timedelta(weeks=12)
    assert short.weeks == 14 and short.requested_weeks == 52
    assert (seg.series, seg.weeks) == ("segment:Champions", 1)
    assert fallback.series == "total"


def test_no_forecast_is_no_data(url: str) -> None:
    with session_scope(url) as s:
        s.query(m.Forecast).delete()
    with session_scope(url) as s, pytest.raises(sales.NoData):
        sales.sales_forecast(session=s, identity=REP2)


def test_forecast_series_with_weekly_history_and_chart(url: str) -> None:
    with session_scope(url) as s:
        data = sales.forecast_series(session=s, series="total", weeks=8, history_weeks=4)
        with pytest.raises(sales.NoData):
            sales.forecast_series(session=s, series="country:Nowhere")
    assert len(data.points) == 8 and data.available_weeks == 14
    # Weeks aligned on the forecast start; the cancellation is left out.
    assert data.history == [
        (FORECAST_START - dt.timedelta(weeks=4), 0.0),
        (FORECAST_START - dt.timedelta(weeks=3), 0.0),
        (FORECAST_START - dt.timedelta(weeks=2), 1000.0),
        (FORECAST_START - dt.timedelta(weeks=1), 750.0),
    ]
    png = charts.forecast_png(data)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000


def test_queries_run_on_postgresql(pg_url: str) -> None:
    """The same answers on PostgreSQL (dates, NULLS LAST, empty IN lists, JSON)."""
    seed_crm(pg_url)
    with session_scope(pg_url) as s:
        assert [x.id for x in sales.hot_leads(session=s, identity=REP2)] == [412, 416, 410, 415]
        with pytest.raises(sales.AmbiguousLead):
            sales.find_lead(session=s, identity=REP2, lead_name="olivia smith")
        assert sales.pipeline_summary(session=s, identity=REP2).total == 6
        assert sales.pipeline_summary(session=s, identity=Identity("manager", 7)).total == 0
        data = sales.forecast_series(session=s, series="total", weeks=2, history_weeks=2)
        assert data.history[-1] == (FORECAST_START - dt.timedelta(weeks=1), 750.0)
        assert sales.segment_summary(session=s, identity=REP2).total_customers == 4
        sales.update_lead_status(session=s, identity=REP2, lead_id=412, status="won")


def test_synthetic_names_vary_within_one_reps_leads() -> None:
    from crm_ml.loader import synthetic_name

    # A rep's leads are every eighth id; lead names use synthetic_name(id * 3 + 1).
    firsts = [synthetic_name(i * 3 + 1)[0] for i in range(41562, 41562 + 8 * 40, 8)]
    assert len(set(firsts)) >= 20
    assert max(firsts[:5].count(f) for f in firsts[:5]) <= 2
    assert synthetic_name(12347) == synthetic_name(12347)  # stable across loads
