"""Lead features of Bank Marketing and X Education: what goes in, what leaks, what it means.

Both datasets reach the model through the same path: the raw columns (as read
by :mod:`crm_ml.datasets`, or as stored in ``leads.features`` by the loader,
where ``Select`` and NaN became null) go through :func:`prepare`, which keeps the
columns known *before* a sales rep works the lead, fixes their types and adds
a few derived columns. :func:`linear_preprocessor` and :func:`tree_preprocessor`
turn the prepared frame into model inputs.

Bank Marketing (``bank-additional-full``), columns dropped:

* ``duration``: length of the last call, known only once the call is over,
  and a call of 0 seconds always means "no". The dataset's own notes say to
  discard it for a realistic predictive model.
* ``y``: the target.

``pdays`` uses 999 for "never contacted"; it becomes ``days_since_previous``
(missing when never contacted) plus ``contacted_before``. The five economic
indicators (``emp.var.rate``, ``cons.price.idx``, ``cons.conf.idx``,
``euribor3m``, ``nr.employed``) are kept: they are published figures known on
the day of the call.

X Education, columns dropped:

* ``Prospect ID``, ``Lead Number``: identifiers (the number also encodes
  creation order, which says nothing a rep can act on).
* ``Tags``: notes the sales team writes *after* calling ("Will revert after
  reading the email", "Ringing", "Closed by Horizzon", "Lost to EINS"); it is
  the outcome of the contact in words. With it the held-out AUC jumps from
  about 0.88 to 0.97: a leak.
* ``Lead Quality``: the rep's judgement of the lead after talking to it
  ("High in Relevance", "Worst").
* ``Lead Profile``: the qualification the sales team assigns ("Potential
  Lead", "Lateral Student"), again after contact.
* ``Asymmetrique Activity Index/Score``, ``Asymmetrique Profile Index/Score``:
  scores computed by an outside process from the lead's activity and profile,
  at an unknown time (activity after contact included); missing for 46% of
  leads and impossible to explain to a rep.
* ``Last Activity``, ``Last Notable Activity``: the latest activity as of the
  data extract, i.e. after the outcome. Many values are the sales team's own
  actions ("SMS Sent": 63% converted, "Had a Phone Conversation",
  "Unreachable", "Email Received") or follow the conversion. Keeping them
  adds about 0.02-0.03 AUC that a fresh lead would not give.
* ``Magazine``, ``Receive More Updates About Our Courses``, ``Update me on
  Supply Chain Content``, ``Get updates on DM Content``, ``I agree to pay the
  amount through cheque``: one value ("No") for every lead.
* ``Converted``: the target.

Kept: how the lead arrived (origin, source, ad channels), the opt-outs, web
activity (visits, time on site, pages per visit: measured while the lead
browsed before signing up), location, and what the lead wrote in the sign-up
form (specialization, occupation, motivation, how they heard of us, the free
interview guide). ``Total Time Spent on Website`` is in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

__all__ = [
    "AD_COLUMNS",
    "BANK",
    "BANK_SPEC",
    "MISSING",
    "SPECS",
    "X_EDUCATION",
    "X_EDUCATION_SPEC",
    "LeadDataset",
    "FORM_FIELDS",
    "describe",
    "get_spec",
    "linear_preprocessor",
    "prepare",
    "read_leads",
    "reference_values",
    "target",
    "tree_preprocessor",
]

logger = logging.getLogger(__name__)

BANK = "bank_marketing"
X_EDUCATION = "x_education"
MISSING = np.nan


@dataclass(frozen=True)
class LeadDataset:
    """How one lead dataset becomes model inputs.

    Attributes:
        name: Source name, as in ``leads.source`` (``bank_marketing``, ``x_education``).
        target: Target column of the raw file.
        positive: Target values meaning "converted".
        numeric: Numeric model columns (after :func:`prepare`).
        categorical: Categorical model columns (after :func:`prepare`).
        log_columns: Numeric columns that get ``log1p`` before scaling (skewed counts).
        dropped: Raw columns left out, with the reason.
        groups: Reason groups: name -> the model columns explained together.
    """

    name: str
    target: str
    positive: tuple[Any, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    log_columns: tuple[str, ...] = ()
    dropped: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Model columns, categorical first then numeric."""
        return [*self.categorical, *self.numeric]


_ECONOMY = ("emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed")

BANK_SPEC = LeadDataset(
    name=BANK,
    target="y",
    positive=("yes",),
    numeric=("age", "campaign", "previous", "days_since_previous", "contacted_before",
             *_ECONOMY),
    categorical=("job", "marital", "education", "default", "housing", "loan", "contact",
                 "month", "day_of_week", "poutcome"),
    log_columns=("campaign", "previous"),
    dropped={
        "duration": "length of the last call: known only after the call (leak)",
        "pdays": "replaced by days_since_previous and contacted_before (999 = never)",
        "y": "target",
    },
    groups={
        "age": ("age",),
        "job": ("job",),
        "marital": ("marital",),
        "education": ("education",),
        "default": ("default",),
        "housing": ("housing",),
        "loan": ("loan",),
        "contact": ("contact",),
        "month": ("month",),
        "day_of_week": ("day_of_week",),
        "campaign": ("campaign",),
        "history": ("previous", "days_since_previous", "contacted_before", "poutcome"),
        "economy": _ECONOMY,
    },
)

AD_COLUMNS = ("Search", "Newspaper Article", "X Education Forums", "Newspaper",
        "Digital Advertisement", "Through Recommendations")

X_EDUCATION_SPEC = LeadDataset(
    name=X_EDUCATION,
    target="Converted",
    positive=(1, "1", True),
    numeric=("TotalVisits", "Total Time Spent on Website", "Page Views Per Visit",
             "form_fields_missing"),
    categorical=("Lead Origin", "Lead Source", "Do Not Email", "Do Not Call", "Country",
                 "Specialization", "How did you hear about X Education",
                 "What is your current occupation",
                 "What matters most to you in choosing a course", *AD_COLUMNS, "City",
                 "A free copy of Mastering The Interview"),
    log_columns=("TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"),
    dropped={
        "Prospect ID": "identifier",
        "Lead Number": "identifier",
        "Tags": "sales team's notes after the call (leak)",
        "Lead Quality": "rep's judgement after contact (leak)",
        "Lead Profile": "qualification assigned by the sales team (leak)",
        "Asymmetrique Activity Index": "outside score of unknown timing, includes later activity",
        "Asymmetrique Profile Index": "outside score of unknown timing",
        "Asymmetrique Activity Score": "outside score of unknown timing, includes later activity",
        "Asymmetrique Profile Score": "outside score of unknown timing",
        "Last Activity": "latest activity at extract time, mostly after contact (leak)",
        "Last Notable Activity": "latest activity at extract time, mostly after contact (leak)",
        "Magazine": "constant",
        "Receive More Updates About Our Courses": "constant",
        "Update me on Supply Chain Content": "constant",
        "Get updates on DM Content": "constant",
        "I agree to pay the amount through cheque": "constant",
        "Converted": "target",
    },
    groups={
        "origin": ("Lead Origin",),
        "source": ("Lead Source",),
        "do_not_email": ("Do Not Email",),
        "do_not_call": ("Do Not Call",),
        "visits": ("TotalVisits",),
        "time_on_site": ("Total Time Spent on Website",),
        "pages": ("Page Views Per Visit",),
        "location": ("Country", "City"),
        "specialization": ("Specialization",),
        "heard_from": ("How did you hear about X Education",),
        "occupation": ("What is your current occupation",),
        "motivation": ("What matters most to you in choosing a course",),
        "ads": AD_COLUMNS,
        "free_guide": ("A free copy of Mastering The Interview",),
        "form": ("form_fields_missing",),
    },
)

FORM_FIELDS = ("Specialization", "How did you hear about X Education",
                "What is your current occupation",
                "What matters most to you in choosing a course", "City")

SPECS: dict[str, LeadDataset] = {BANK: BANK_SPEC, X_EDUCATION: X_EDUCATION_SPEC}


def get_spec(name: str) -> LeadDataset:
    """Return the spec of a lead source.

    Raises:
        KeyError: unknown source.
    """
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown lead dataset {name!r}; known: {sorted(SPECS)}") from None


def _categorical(s: pd.Series) -> pd.Series:
    """Object column of str values, NaN for missing (also for the literal ``Select``)."""
    values = [MISSING if (v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))
                          or v == "Select") else str(v) for v in s.astype(object)]
    return pd.Series(values, index=s.index, dtype=object)


def _numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(object).where(s.notna(), np.nan), errors="coerce").astype(float)


def prepare(raw: pd.DataFrame, spec: LeadDataset) -> pd.DataFrame:
    """Model columns of raw lead rows (file rows or ``leads.features`` records).

    Missing raw columns become missing values, so a record lacking a field is
    still scored.

    Args:
        raw: Raw rows with the dataset's original column names.
        spec: The dataset's spec.

    Returns:
        A frame with ``spec.columns``; categoricals are object (str or NaN),
        numerics float.
    """
    df = raw.reset_index(drop=True)
    out = pd.DataFrame(index=df.index)

    def col(name: str) -> pd.Series:
        return df[name] if name in df.columns else pd.Series(np.nan, index=df.index)

    if spec.name == BANK:
        pdays = _numeric(col("pdays"))
        never = pdays.isna() | (pdays >= 999)
        for c in spec.categorical:
            out[c] = _categorical(col(c))
        out["age"] = _numeric(col("age"))
        out["campaign"] = _numeric(col("campaign"))
        out["previous"] = _numeric(col("previous"))
        out["days_since_previous"] = pdays.where(~never, np.nan)
        out["contacted_before"] = (~never).astype(float)
        for c in _ECONOMY:
            out[c] = _numeric(col(c))
    elif spec.name == X_EDUCATION:
        for c in spec.categorical:
            out[c] = _categorical(col(c))
        for c in ("TotalVisits", "Total Time Spent on Website", "Page Views Per Visit"):
            out[c] = _numeric(col(c))
        out["form_fields_missing"] = out[list(FORM_FIELDS)].isna().sum(axis=1).astype(float)
    else:  # pragma: no cover - specs are closed
        raise KeyError(spec.name)
    return out[spec.columns]


def target(raw: pd.DataFrame, spec: LeadDataset) -> np.ndarray:
    """The 0/1 conversion outcome of raw rows."""
    return raw[spec.target].isin(list(spec.positive)).to_numpy().astype(np.int64)


def _log1p_nonnegative(a: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(a, 0, None))


def linear_preprocessor(spec: LeadDataset) -> ColumnTransformer:
    """One-hot categoricals (rare levels pooled), imputed and scaled numerics.

    Args:
        spec: The dataset's spec.

    Returns:
        An unfitted ColumnTransformer for a linear model.
    """
    logged = [c for c in spec.numeric if c in spec.log_columns]
    plain = [c for c in spec.numeric if c not in spec.log_columns]
    cat = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="(missing)"),
        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20,
                      sparse_output=False),
    )
    num = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    log = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        FunctionTransformer(_log1p_nonnegative, feature_names_out="one-to-one"),
        StandardScaler(),
    )
    parts: list[tuple[str, Any, list[str]]] = [("cat", cat, list(spec.categorical))]
    if plain:
        parts.append(("num", num, plain))
    if logged:
        parts.append(("log", log, logged))
    return ColumnTransformer(parts)


def tree_preprocessor(spec: LeadDataset) -> ColumnTransformer:
    """Ordinal-coded categoricals (first, missing and unknown as NaN), raw numerics.

    Pair it with ``HistGradientBoostingClassifier(categorical_features=
    list(range(len(spec.categorical))))``.
    """
    enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                         encoded_missing_value=np.nan, min_frequency=10)
    return ColumnTransformer([
        ("cat", enc, list(spec.categorical)),
        ("num", "passthrough", list(spec.numeric)),
    ])


def reference_values(X: pd.DataFrame, spec: LeadDataset) -> dict[str, Any]:
    """Typical values of the prepared columns: median numerics, most frequent categories.

    A reason is how a lead differs from this typical lead.
    """
    ref: dict[str, Any] = {}
    for c in spec.numeric:
        ref[c] = float(X[c].median()) if X[c].notna().any() else np.nan
    for c in spec.categorical:
        counts = X[c].value_counts(dropna=False)
        ref[c] = counts.index[0] if len(counts) else MISSING
    return ref


def describe(spec: LeadDataset, group: str, row: Mapping[str, Any]) -> str:
    """Say in a sales rep's words what one feature group of a lead shows.

    See :func:`crm_ml.features.lead_reasons.describe` (the wording lives there).
    """
    from crm_ml.features.lead_reasons import describe as wording

    return wording(spec, group, row)


def read_leads(*, session: Any) -> pd.DataFrame:
    """Every lead of the CRM: ``id``, ``source``, ``features`` (the raw dict)."""
    from sqlalchemy import select

    from crm_ml.db.models import Lead

    rows = session.execute(select(Lead.id, Lead.source, Lead.features).order_by(Lead.id)).all()
    return pd.DataFrame(rows, columns=["id", "source", "features"])

