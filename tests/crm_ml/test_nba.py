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
