"""Tests of crm_ml.nba: known-answer off-policy evaluation and the small API."""

from __future__ import annotations

import numpy as np

from crm_ml import nba


def _simulate(n: int, seed: int = 0):
    """Contexts, a known logging policy and known per-action reward probabilities."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    logits = np.column_stack([0.8 * x[:, 0], -0.5 * x[:, 1], np.zeros(n)])
    prop = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    actions = (rng.random(n)[:, None] > prop.cumsum(axis=1)).sum(axis=1)
    mean_r = 1 / (1 + np.exp(-np.column_stack([-1 + x[:, 0], -1 - x[:, 0], -0.5 + 0 * x[:, 1]])))
    rewards = (rng.random(n) < mean_r[np.arange(n), actions]).astype(float)
    return x, actions, rewards, prop, mean_r


def test_known_answer_dr_and_ips_cover_the_true_value():
    x, a, r, prop, mean_r = _simulate(20000, seed=1)
    pi = np.zeros_like(prop)
    pi[np.arange(len(x)), np.where(x[:, 0] > 0, 0, 1)] = 1.0  # a sensible target policy
    truth = float((pi * mean_r).sum(axis=1).mean())
    model = nba.NextBestAction(n_actions=3).fit(x, a, r)
    q, p = model.expected_rewards(x), model.propensities(x)
    dr = nba.dr_value(pi, a, r, p, q, clip=0.01)
    lo, hi = nba.bootstrap_ci(dr, n_boot=300, seed=0)
    assert lo <= truth <= hi
    ips = nba.ips_value(pi, a, r, prop, clip=0.01).mean()
    assert abs(ips - truth) < 0.02
    # the learned greedy policy beats the logged one on the simulator's truth
    learned = model.policy(x)
    assert (learned * mean_r).sum(axis=1).mean() > mean_r[np.arange(len(x)), a].mean()


def test_propensities_are_probabilities():
    x, a, r, _prop, _ = _simulate(2000)
    model = nba.NextBestAction(n_actions=3).fit(x, a, r)
    p = model.propensities(x)
    assert p.shape == (2000, 3)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert set(model.predict(x)) <= {0, 1, 2}


def test_next_best_offer_is_pure_and_explains():
    out = nba.next_best_offer(["Mug", "Candle", "Lamp", "Bag"], "At risk", 0.7)
    assert "retention" in out["action"] and out["products"] == ["Mug", "Candle", "Lamp"]
    assert any("churn risk" in w for w in out["why"])
    calm = nba.next_best_offer([], "Champions", 0.05)
    assert "loyalty" in calm["action"]
    assert "no product recommendation available" in calm["why"]


def test_real_data_evaluation_and_recommend():
    from crm_ml.datasets import read_bank_marketing

    df = read_bank_marketing().sample(8000, random_state=0)
    model, metrics = nba.evaluate_nba(df, n_boot=100)
    assert metrics["ci_low"] <= metrics["dr_gain"] <= metrics["ci_high"]
    assert metrics["significant"] == (metrics["ci_low"] > 0)
    assert 0 < metrics["logged_value"] < 0.3
    rec = nba.recommend(model, df.iloc[0])
    assert rec["action"] in nba.ACTIONS
    assert 0 <= rec["expected_rate"] <= 1


def _bank_model():
    from crm_ml.datasets import read_bank_marketing

    df = read_bank_marketing()
    x, a, r = nba._prepare(df)
    model = nba.NextBestAction().fit(x.to_numpy(), a, r)
    model.columns_ = list(x.columns)
    return df, model


def test_lead_actions_match_recommend_one_by_one():
    df, model = _bank_model()
    sample = df.sample(40, random_state=3)
    many = nba.lead_actions(model, sample)
    for index, row in sample.iterrows():
        one = nba.recommend(model, row)
        assert many.loc[index, "action"] == one["action"]
        assert abs(many.loc[index, "expected_rate"] - one["expected_rate"]) < 1e-9
    assert nba.say_action("cellular/early").startswith("Call on their mobile early in the week")


def test_write_actions_covers_open_bank_leads_and_customers(tmp_path):
    import pytest

    from tests.support.servers import ROOT, crm_snapshot

    if not (ROOT / "var" / "crm.db").exists():
        pytest.skip("the CRM is not loaded (make load train-models)")
    from sqlalchemy import func, select

    from crm_ml.db import models as m
    from crm_ml.db import session_scope
    from crm_ml.db.models_insights import NextBestAction as Row

    url = f"sqlite:///{crm_snapshot(tmp_path)}"
    _df, model = _bank_model()
    with session_scope(url) as session:
        n = nba.write_actions(session=session, model=model, version="t1")
    with session_scope(url) as session:
        bank = session.scalar(select(func.count()).select_from(m.Lead)
                              .where(m.Lead.source == "bank_marketing"))
        leads = session.scalar(select(func.count()).select_from(Row)
                               .where(Row.lead_id.is_not(None)))
        assert leads == bank and n > bank
        lead_id = session.scalar(select(m.Lead.id).where(m.Lead.source == "bank_marketing"))
        got = nba.action_for(session=session, lead_id=lead_id)
        assert got["text"].startswith("Call on their") and 0 <= got["expected_rate"] <= 1
        customer = session.scalar(select(Row.customer_id).where(Row.customer_id.is_not(None)))
        offer = nba.action_for(session=session, customer_id=customer)
        assert offer["reasons"] and offer["model_version"] == "t1"
        assert nba.action_for(session=session, lead_id=-5) is None
