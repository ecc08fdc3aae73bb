"""Next best action: an offline contextual bandit on logged campaign data.

The logged data is Bank Marketing (``bank-additional``): the context is the customer
(age, job, marital status, education, default/housing/loan, earlier campaigns), the
action is the contact choice the bank made (channel ``cellular``/``telephone`` crossed
with a weekday bucket: six actions) and the reward is the subscription (``y == yes``).

:class:`NextBestAction` estimates the logging propensities with a multinomial
logistic regression of action on context, fits one logistic reward model per action
and acts greedily on them. :func:`evaluate_nba` scores that policy off-policy on a
held-out split with clipped inverse propensity scoring (IPS) and doubly robust (DR)
estimates, with bootstrap confidence intervals, against the logged policy (its mean
held-out reward) and a uniformly random policy. A gain is only called
``significant`` when the DR gain's interval lies above zero.

:func:`next_best_offer` is a pure function for retail customers turning recommended
products, the segment and the churn risk into an action text with its reasons.

Training writes one row per lead and per retail customer into ``next_best_actions``
(:func:`write_actions`): for Bank Marketing leads the policy's contact choice with its
expected subscription rate, uplift over the logged rate and reasons; for retail customers
:func:`next_best_offer` over their stored recommendations, segment and churn risk. The
actions and the console only read that table (:func:`action_for`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from crm_ml.training import Progress, training

__all__ = [
    "ACTIONS", "CONTEXT_COLUMNS", "MODEL_NAME", "NextBestAction", "actions_of",
    "action_for", "bootstrap_ci", "dr_value", "evaluate_nba", "ips_value", "lead_actions",
    "next_best_offer", "recommend", "say_action", "train_and_store", "write_actions",
]

logger = logging.getLogger(__name__)

MODEL_NAME = "nba"
CATEGORICAL = ["job", "marital", "education", "default", "housing", "loan", "poutcome"]
NUMERIC = ["age", "previous", "pdays"]
CONTEXT_COLUMNS = CATEGORICAL + NUMERIC
DAY_BUCKET = {"mon": "early", "tue": "early", "wed": "mid", "thu": "late", "fri": "late"}
ACTIONS = [f"{c}/{b}" for c in ("cellular", "telephone") for b in ("early", "mid", "late")]


def actions_of(df: pd.DataFrame) -> np.ndarray:
    """The logged action index of each Bank Marketing row (channel x weekday bucket)."""
    labels = df["contact"].astype(str) + "/" + df["day_of_week"].map(DAY_BUCKET).astype(str)
    index = {a: i for i, a in enumerate(ACTIONS)}
    return labels.map(index).to_numpy(dtype=int)


def _design(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """One-hot categoricals plus scaled numerics; ``columns`` aligns to a fitted layout."""
    x = df[CONTEXT_COLUMNS].copy()
    x["pdays"] = (x["pdays"] != 999).astype(float)  # 999 means "never contacted"
    x["age"] = x["age"] / 100.0
    x["previous"] = np.minimum(x["previous"], 5) / 5.0
    out = pd.get_dummies(x, columns=CATEGORICAL, dtype=float)
    if columns is not None:
        out = out.reindex(columns=list(columns), fill_value=0.0)
    return out


class NextBestAction:
    """Greedy policy on per-action reward models, with logging propensities.

    Args:
        C: Inverse L2 strength of the logistic regressions.
        clip: Minimum propensity used in IPS/DR weights (weights are ``1/max(p, clip)``).
        n_actions: Number of actions (default: the six of :data:`ACTIONS`).
    """

    def __init__(self, C: float = 1.0, clip: float = 0.05, n_actions: int | None = None) -> None:
        self.C = C
        self.clip = clip
        self.n_actions = n_actions

    def fit(self, x: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> NextBestAction:
        """Fit the propensity model and one reward model per action.

        Args:
            x: Context matrix (n, d).
            actions: Logged action indices (n,).
            rewards: Observed rewards in {0, 1} (n,).

        Returns:
            self
        """
        x = np.asarray(x, dtype=float)
        actions = np.asarray(actions, dtype=int)
        rewards = np.asarray(rewards, dtype=float)
        self.n_actions_ = int(self.n_actions or max(len(ACTIONS), actions.max() + 1))
        self.propensity_ = LogisticRegression(C=self.C, max_iter=1000).fit(x, actions)
        self.base_rate_ = float(rewards.mean())
        self.reward_models_: list[LogisticRegression | float] = []
        for a in range(self.n_actions_):
            mask = actions == a
            y = rewards[mask]
            if mask.sum() < 20 or y.min() == y.max():
                self.reward_models_.append(float(y.mean()) if mask.any() else self.base_rate_)
            else:
                self.reward_models_.append(
                    LogisticRegression(C=self.C, max_iter=1000).fit(x[mask], y))
        logger.info("nba fitted on %d rows, %d actions", len(x), self.n_actions_)
        return self

    def propensities(self, x: np.ndarray) -> np.ndarray:
        """Estimated logging probabilities (n, n_actions)."""
        proba = self.propensity_.predict_proba(np.asarray(x, dtype=float))
        out = np.zeros((len(proba), self.n_actions_))
        out[:, self.propensity_.classes_] = proba
        return out

    def expected_rewards(self, x: np.ndarray) -> np.ndarray:
        """Reward model predictions for every action (n, n_actions)."""
        x = np.asarray(x, dtype=float)
        cols = [m.predict_proba(x)[:, 1] if isinstance(m, LogisticRegression)
                else np.full(len(x), m) for m in self.reward_models_]
        return np.column_stack(cols)

    def policy(self, x: np.ndarray) -> np.ndarray:
        """The greedy policy's action probabilities (one-hot, n x n_actions)."""
        q = self.expected_rewards(x)
        pi = np.zeros_like(q)
        pi[np.arange(len(q)), q.argmax(axis=1)] = 1.0
        return pi

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The recommended action index per row."""
        return self.expected_rewards(x).argmax(axis=1)


def ips_value(pi: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              propensities: np.ndarray, clip: float = 0.05) -> np.ndarray:
    """Per-row clipped IPS terms; their mean estimates the target policy's value.

    Args:
        pi: Target policy probabilities (n, k).
        actions: Logged actions (n,).
        rewards: Logged rewards (n,).
        propensities: Logging probabilities (n, k).
        clip: Floor for the logged action's propensity.
    """
    rows = np.arange(len(actions))
    w = pi[rows, actions] / np.maximum(propensities[rows, actions], clip)
    return w * rewards


def dr_value(pi: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
             propensities: np.ndarray, q: np.ndarray, clip: float = 0.05) -> np.ndarray:
    """Per-row doubly robust terms: the model's value plus the weighted residual.

    Args:
        pi: Target policy probabilities (n, k).
        actions: Logged actions (n,).
        rewards: Logged rewards (n,).
        propensities: Logging probabilities (n, k).
        q: Reward model predictions (n, k).
        clip: Floor for the logged action's propensity.
    """
    rows = np.arange(len(actions))
    w = pi[rows, actions] / np.maximum(propensities[rows, actions], clip)
    return (pi * q).sum(axis=1) + w * (rewards - q[rows, actions])


def bootstrap_ci(terms: np.ndarray, n_boot: int = 500, alpha: float = 0.05,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-row terms."""
    rng = np.random.default_rng(seed)
    n = len(terms)
    means = np.array([terms[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _prepare(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x = _design(df)
    return x, actions_of(df), (df["y"].astype(str) == "yes").to_numpy(dtype=float)


def evaluate_nba(df: pd.DataFrame | None = None, *, test_size: float = 0.3, seed: int = 0,
                 clip: float = 0.05, n_boot: int = 500) -> tuple[NextBestAction, dict[str, Any]]:
    """Fit on a training split and evaluate off-policy on the held-out split.

    Args:
        df: Bank Marketing rows (default: :func:`crm_ml.datasets.read_bank_marketing`).
        test_size: Held-out share.
        seed: Split and bootstrap seed.
        clip: Propensity floor of IPS/DR.
        n_boot: Bootstrap replicates.

    Returns:
        The model fitted on the training split and the metrics ``{ips_gain, dr_gain,
        ci_low, ci_high, significant, logged_value, random_dr_value, policy_dr_value,
        policy_ips_value}``; gains are the estimated policy value minus the logged
        policy's held-out mean reward, the interval is the DR gain's.
    """
    if df is None:
        from crm_ml.datasets import read_bank_marketing
        df = read_bank_marketing()
    x, a, r = _prepare(df)
    idx_tr, idx_te = train_test_split(np.arange(len(df)), test_size=test_size,
                                      random_state=seed, stratify=a)
    model = NextBestAction(clip=clip).fit(x.iloc[idx_tr].to_numpy(), a[idx_tr], r[idx_tr])
    model.columns_ = list(x.columns)
    xt, at, rt = x.iloc[idx_te].to_numpy(), a[idx_te], r[idx_te]
    p, q = model.propensities(xt), model.expected_rewards(xt)
    pi = model.policy(xt)
    uniform = np.full_like(pi, 1.0 / pi.shape[1])
    logged = float(rt.mean())
    dr_terms = dr_value(pi, at, rt, p, q, clip)
    ips_terms = ips_value(pi, at, rt, p, clip)
    lo, hi = bootstrap_ci(dr_terms - rt, n_boot=n_boot, seed=seed)
    random_dr = float(dr_value(uniform, at, rt, p, q, clip).mean())
    metrics = {
        "ips_gain": float(ips_terms.mean()) - logged,
        "dr_gain": float(dr_terms.mean()) - logged,
        "ci_low": lo, "ci_high": hi, "significant": bool(lo > 0),
        "logged_value": logged, "random_dr_value": random_dr,
        "policy_dr_value": float(dr_terms.mean()), "policy_ips_value": float(ips_terms.mean()),
    }
    logger.info("nba held-out: %s", metrics)
    return model, metrics


def recommend(model: NextBestAction, context_row: Mapping[str, Any] | pd.Series,
              top: int = 3) -> dict[str, Any]:
    """The best action for one customer, its expected effect and the top reasons.

    Args:
        model: A fitted :class:`NextBestAction` with ``columns_`` (from :func:`evaluate_nba`
            or :func:`train_and_store`).
        context_row: The customer's Bank Marketing fields (:data:`CONTEXT_COLUMNS`).
        top: Number of reasons.

    Returns:
        ``{action, expected_rate, logged_rate, uplift, reasons}``; reasons are the features
        pushing the chosen action's reward model up most (coefficient x value).
    """
    row = pd.DataFrame([dict(context_row)])
    x = _design(row, model.columns_).to_numpy()
    q = model.expected_rewards(x)[0]
    best = int(q.argmax())
    reasons: list[str] = []
    reward_model = model.reward_models_[best]
    if isinstance(reward_model, LogisticRegression):
        contrib = reward_model.coef_[0] * x[0]
        order = np.argsort(-contrib)
        reasons = [model.columns_[i] for i in order[:top] if contrib[i] > 0]
    return {"action": ACTIONS[best] if best < len(ACTIONS) else str(best),
            "expected_rate": float(q[best]), "logged_rate": model.base_rate_,
            "uplift": float(q[best]) - model.base_rate_, "reasons": reasons}


def next_best_offer(products: Sequence[str], segment: str | None,
                    churn_risk: float | None) -> dict[str, Any]:
    """Turn recommendations, segment and churn risk into one retail action with reasons.

    Args:
        products: Recommended product names, best first (may be empty).
        segment: The customer's segment label (e.g. ``"Champions"``, ``"At risk"``).
        churn_risk: Churn probability in [0, 1], or None if unknown.

    Returns:
        ``{action, products, why}``.
    """
    why: list[str] = []
    picks = list(products)[:3]
    risk = churn_risk if churn_risk is not None else 0.0
    seg = (segment or "").strip()
    if risk >= 0.5:
        action = "Call the customer with a retention discount"
        why.append(f"churn risk is high ({risk:.0%})")
    elif risk >= 0.3:
        action = "Send a win-back email"
        why.append(f"churn risk is moderate ({risk:.0%})")
    elif seg.lower() in {"champions", "loyal", "loyal customers"}:
        action = "Offer early access / loyalty reward"
        why.append(f"segment '{seg}' values recognition")
    else:
        action = "Send a personalised product email"
    if seg and not any(seg in w for w in why):
        why.append(f"segment: {seg}")
    if picks:
        action += " featuring " + ", ".join(picks)
        why.append("products recommended from similar customers' purchases")
    else:
        why.append("no product recommendation available")
    return {"action": action, "products": picks, "why": why}


#: Words for the parts of an action label (``cellular/early``).
CHANNEL_WORDS = {"cellular": "on their mobile", "telephone": "on their landline"}
DAY_WORDS = {"early": "early in the week (Monday or Tuesday)", "mid": "midweek (Wednesday)",
             "late": "late in the week (Thursday or Friday)"}
#: Readable names of the context's design columns.
COLUMN_WORDS = {"age": "their age", "previous": "earlier contacts", "pdays": "contacted before",
                "poutcome_success": "the last campaign succeeded with them"}


def say_action(action: str) -> str:
    """An action label in words: ``cellular/early`` -> "Call on their mobile early in..."."""
    channel, _, day = action.partition("/")
    return f"Call {CHANNEL_WORDS.get(channel, channel)} {DAY_WORDS.get(day, day)}"


def _say_column(column: str) -> str:
    if column in COLUMN_WORDS:
        return COLUMN_WORDS[column]
    name, _, value = column.partition("_")
    return f"{name} is {value.replace('.', ' ')}" if value else name


def lead_actions(model: NextBestAction, features: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The policy's action for many leads at once (vectorised :func:`recommend`).

    Args:
        model: A fitted :class:`NextBestAction` with ``columns_``.
        features: One row per lead with the Bank Marketing fields of :data:`CONTEXT_COLUMNS`.
        top: Reasons per lead.

    Returns:
        Columns ``action`` (label), ``expected_rate``, ``uplift``, ``reasons`` (words), on
        ``features``' index.
    """
    x = _design(features, model.columns_).to_numpy()
    q = model.expected_rewards(x)
    best = q.argmax(axis=1)
    reasons: list[list[str]] = [[] for _ in range(len(x))]
    for a, reward_model in enumerate(model.reward_models_):
        rows = np.flatnonzero(best == a)
        if not len(rows) or not isinstance(reward_model, LogisticRegression):
            continue
        contrib = x[rows] * reward_model.coef_[0]
        order = np.argsort(-contrib, axis=1)[:, :top]
        for i, row in enumerate(rows):
            reasons[row] = [_say_column(model.columns_[j]) for j in order[i] if contrib[i, j] > 0]
    rate = q[np.arange(len(q)), best]
    return pd.DataFrame({"action": [ACTIONS[b] for b in best], "expected_rate": rate,
                         "uplift": rate - model.base_rate_, "reasons": reasons},
                        index=features.index)


def _customer_offers(session: Any) -> list[dict[str, Any]]:
    """:func:`next_best_offer` for every customer with a stored segment, churn score or
    recommendation (from the CRM's model tables)."""
    from sqlalchemy import select

    from crm_ml.db import models as m

    segments = dict(session.execute(select(m.Segment.customer_id, m.Segment.rfm_segment)).all())
    churn = dict(session.execute(select(m.ChurnScore.customer_id, m.ChurnScore.probability)).all())
    products: dict[int, list[str]] = {}
    recs = session.execute(
        select(m.Recommendation.customer_id, m.Product.description)
        .join(m.Product, m.Product.stock_code == m.Recommendation.stock_code)
        .where(m.Recommendation.customer_id.is_not(None))
        .order_by(m.Recommendation.customer_id, m.Recommendation.rank))
    for customer_id, description in recs:
        products.setdefault(customer_id, []).append(description)
    rows = []
    for customer_id in sorted(set(segments) | set(churn) | set(products)):
        offer = next_best_offer(products.get(customer_id, []), segments.get(customer_id),
                                churn.get(customer_id))
        rows.append({"lead_id": None, "customer_id": customer_id,
                     "action": offer["action"][:200],
                     "expected_rate": None, "uplift": None, "reasons": offer["why"]})
    return rows


def write_actions(*, session: Any, model: NextBestAction, version: str) -> int:
    """Replace ``next_best_actions``: the policy for every open Bank Marketing lead, the
    retail offer for every scored customer. Returns rows written."""
    from sqlalchemy import delete, insert, select

    from crm_ml.db import models as m
    from crm_ml.db.models_insights import NextBestAction as Row

    leads = session.execute(select(m.Lead.id, m.Lead.features)
                            .where(m.Lead.source == "bank_marketing",
                                   m.Lead.status.not_in(("won", "lost")))).all()
    rows: list[dict[str, Any]] = []
    if leads:
        features = pd.DataFrame([f for _, f in leads], index=[i for i, _ in leads])
        chosen = lead_actions(model, features)
        rows += [{"lead_id": int(i), "customer_id": None, "action": r.action,
                  "expected_rate": float(r.expected_rate), "uplift": float(r.uplift),
                  "reasons": list(r.reasons)}
                 for i, r in zip(chosen.index, chosen.itertuples(index=False), strict=True)]
    rows += _customer_offers(session)
    table = Row.__table__
    session.execute(delete(table))
    for start in range(0, len(rows), 5000):
        session.execute(insert(table), [{**r, "model_version": version}
                                        for r in rows[start:start + 5000]])
    logger.info("next best actions written: %d rows", len(rows))
    return len(rows)


def action_for(*, session: Any, lead_id: int | None = None,
               customer_id: int | None = None) -> dict[str, Any] | None:
    """The stored next best action of one lead or customer, or None when none is stored.

    Returns:
        ``{action, text, expected_rate, uplift, reasons, model_version}``; ``text`` is the
        action in words.
    """
    from sqlalchemy import select

    from crm_ml.db.models_insights import NextBestAction as t
    where = t.lead_id == lead_id if lead_id is not None else t.customer_id == customer_id
    row = session.scalars(select(t).where(where).limit(1)).first()
    if row is None:
        return None
    text = say_action(row.action) if row.lead_id is not None else row.action
    return {"action": row.action, "text": text, "expected_rate": row.expected_rate,
            "uplift": row.uplift, "reasons": list(row.reasons or []),
            "model_version": row.model_version}


def train_and_store(*, url: str | None = None, models_dir: Path | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate off-policy, refit on all Bank Marketing rows, store the artifact.

    The data is the Bank Marketing file itself (the CRM holds no campaign log), all
    41k rows; logistic models keep this to a few seconds. The policy's action for every
    open Bank Marketing lead and the retail offer for every scored customer go to
    ``next_best_actions`` (:func:`write_actions`).

    Args:
        url: CRM database URL (registry record).
        models_dir: Registry root.
        progress: Step messages.

    Returns:
        ``{ips_gain, dr_gain, ci_low, ci_high, significant, logged_value, random_dr_value}``.
    """
    from crm_ml.datasets import read_bank_marketing

    keys = ("ips_gain", "dr_gain", "ci_low", "ci_high", "significant", "logged_value",
            "random_dr_value")
    with training(MODEL_NAME, url=url, models_dir=models_dir, progress=progress) as run:
        df = read_bank_marketing()
        run.say(f"nba: off-policy evaluation on {len(df)} logged contacts")
        _m, full = evaluate_nba(df)
        metrics = {k: full[k] for k in keys}
        run.say("nba: refitting on all rows")
        x, a, r = _prepare(df)
        model = NextBestAction().fit(x.to_numpy(), a, r)
        model.columns_ = list(x.columns)
        data_hash = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).values
                                   .tobytes()).hexdigest()
        run.say("nba: writing the next best action of every lead and customer")
        _saved, n = run.store(model, metrics=metrics, data_hash=data_hash,
                              params={"actions": ACTIONS, "clip": model.clip, "rows": len(df),
                                      "seconds": run.seconds},
                              write=lambda s, version: write_actions(session=s, model=model,
                                                                     version=version))
        run.say(f"nba: {n:,} next best actions written")
    return metrics
