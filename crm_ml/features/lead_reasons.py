"""Lead reasons in a sales rep's words: what one feature group of a lead shows.

:func:`describe` turns a feature group of a prepared lead row (see
:func:`crm_ml.features.leads.prepare`) into a short phrase ("contacted 3 times
this campaign", "spent 25 minutes on the website"); lead scoring puts these
phrases behind each score.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from crm_ml.features.leads import (
    AD_COLUMNS,
    BANK,
    FORM_FIELDS,
    X_EDUCATION,
    X_EDUCATION_SPEC,
    LeadDataset,
)

__all__ = ["describe"]

logger = logging.getLogger(__name__)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


_JOBS = {
    "admin.": "works in administration", "blue-collar": "blue-collar worker",
    "entrepreneur": "entrepreneur", "housemaid": "works as a housemaid",
    "management": "works in management", "retired": "retired",
    "self-employed": "self-employed", "services": "works in services", "student": "student",
    "technician": "technician", "unemployed": "unemployed", "unknown": "job unknown",
}
_EDUCATION = {
    "basic.4y": "4 years of basic education", "basic.6y": "6 years of basic education",
    "basic.9y": "9 years of basic education", "high.school": "high-school education",
    "illiterate": "cannot read or write", "professional.course": "took a professional course",
    "university.degree": "university degree", "unknown": "education unknown",
}
_MONTHS = {m: name for m, name in zip(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    ["January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"], strict=True)}
_DAYS = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
         "fri": "Friday"}


def _bank_text(group: str, row: Mapping[str, Any]) -> str:
    v = row.get(group)
    if group == "age":
        return f"aged {int(v)}" if not _missing(v) else "age unknown"
    if group == "job":
        return _JOBS.get(str(v), f"job: {v}")
    if group == "marital":
        return {"married": "married", "single": "single", "divorced": "divorced or widowed"}.get(
            str(v), "marital status unknown")
    if group == "education":
        return _EDUCATION.get(str(v), f"education: {v}")
    if group == "default":
        return {"yes": "has credit in default", "no": "no credit in default"}.get(
            str(v), "credit default status unknown")
    if group == "housing":
        return {"yes": "has a housing loan", "no": "no housing loan"}.get(
            str(v), "housing loan unknown")
    if group == "loan":
        return {"yes": "has a personal loan", "no": "no personal loan"}.get(
            str(v), "personal loan unknown")
    if group == "contact":
        return {"cellular": "reached on a mobile phone", "telephone": "reached on a landline"}.get(
            str(v), "contact channel unknown")
    if group == "month":
        return f"called in {_MONTHS.get(str(v), v)}"
    if group == "day_of_week":
        return f"called on a {_DAYS.get(str(v), v)}"
    if group == "campaign":
        return f"contacted {_times(int(v))} this campaign" if not _missing(v) else \
            "contacts this campaign unknown"
    if group == "history":
        outcome = row.get("poutcome")
        prev = row.get("previous")
        days = row.get("days_since_previous")
        when = f", last contact {int(days)} days before" if not _missing(days) else ""
        if outcome == "success":
            return f"previous campaign succeeded{when}"
        if outcome == "failure":
            return f"previous campaign failed{when}"
        if not _missing(prev) and prev > 0:
            return f"contacted {_times(int(prev))} before this campaign{when}"
        return "never contacted before this campaign"
    if group == "economy":
        rate = row.get("euribor3m")
        if _missing(rate):
            return "economic climate unknown"
        level = "low" if rate < 2.0 else "high" if rate > 4.0 else "moderate"
        return f"interest rates {level} when called (3-month Euribor {rate:.1f}%)"
    raise KeyError(group)


_ORIGINS = {
    "Lead Add Form": "filled in the lead add form",
    "Landing Page Submission": "signed up on a landing page",
    "API": "came in through the API",
    "Lead Import": "imported from a lead list",
    "Quick Add Form": "added with the quick add form",
}
_SOURCES = {
    "Google": "found us on Google", "Direct Traffic": "came to the website directly",
    "Olark Chat": "came through the website chat", "Organic Search": "came from a web search",
    "Reference": "was referred by someone", "Welingak Website": "came from the Welingak website",
    "Referral Sites": "came from a referral site", "Facebook": "came from Facebook",
    "bing": "found us on Bing", "google": "found us on Google",
    "Click2call": "used click-to-call", "Live Chat": "came through live chat",
    "Social Media": "came from social media",
}
_OCCUPATIONS = {
    "Unemployed": "currently unemployed", "Working Professional": "a working professional",
    "Student": "a student", "Housewife": "a homemaker", "Businessman": "runs a business",
    "Other": "occupation: other",
}


def _x_education_text(group: str, row: Mapping[str, Any]) -> str:
    cols = X_EDUCATION_SPEC.groups[group]
    v = row.get(cols[0])
    if group == "origin":
        return _ORIGINS.get(str(v), f"lead origin: {v}") if not _missing(v) else \
            "lead origin unknown"
    if group == "source":
        return _SOURCES.get(str(v), f"came from {v}") if not _missing(v) else \
            "lead source unknown"
    if group == "do_not_email":
        return "asked not to be emailed" if v == "Yes" else "accepts emails"
    if group == "do_not_call":
        return "asked not to be called" if v == "Yes" else "accepts calls"
    if group == "visits":
        if _missing(v):
            return "website visits unknown"
        n = int(v)
        return "never visited the website" if n == 0 else f"visited the website {_times(n)}"
    if group == "time_on_site":
        if _missing(v):
            return "time on the website unknown"
        minutes = int(round(float(v) / 60.0))
        if v <= 0:
            return "spent no time on the website"
        if minutes < 1:
            return "spent under a minute on the website"
        return f"spent {minutes} minute{'s' if minutes != 1 else ''} on the website"
    if group == "pages":
        if _missing(v):
            return "pages per visit unknown"
        if v <= 0:
            return "viewed no pages"
        pages = f"{float(v):.1f}".removesuffix(".0")
        return f"viewed {pages} page{'' if pages == '1' else 's'} per visit"
    if group == "location":
        city, country = row.get("City"), row.get("Country")
        if not _missing(city) and not str(city).startswith("Other") and city != "Tier II Cities":
            return f"based in {city}"
        if not _missing(city):
            return f"based in {str(city)[0].lower() + str(city)[1:]}"
        if not _missing(country) and country != "unknown":
            return f"based in {country}"
        return "location not given"
    if group == "specialization":
        return f"interested in {v}" if not _missing(v) else "did not give a specialization"
    if group == "heard_from":
        return f"heard of us through {str(v).lower()}" if not _missing(v) else \
            "did not say how they heard of us"
    if group == "occupation":
        return _OCCUPATIONS.get(str(v), f"occupation: {v}") if not _missing(v) else \
            "did not give an occupation"
    if group == "motivation":
        return f"wants {str(v).lower()}" if not _missing(v) else \
            "did not say what matters in a course"
    if group == "ads":
        seen = [c.lower() for c in AD_COLUMNS if row.get(c) == "Yes"]
        if not seen:
            return "did not report seeing an ad"
        return "saw us in " + ", ".join(seen)
    if group == "free_guide":
        return "asked for the free interview guide" if v == "Yes" else \
            "did not ask for the free interview guide"
    if group == "form":
        n = 0 if _missing(v) else int(v)
        if n == 0:
            return "filled in the whole sign-up form"
        return f"left {n} of {len(FORM_FIELDS)} sign-up form fields empty"
    raise KeyError(group)


_TEXTS: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    BANK: _bank_text,
    X_EDUCATION: _x_education_text,
}


def describe(spec: LeadDataset, group: str, row: Mapping[str, Any]) -> str:
    """Say in a sales rep's words what one feature group of a lead shows.

    Args:
        spec: The dataset's spec.
        group: A key of ``spec.groups``.
        row: One prepared row (a mapping from model column to value).

    Returns:
        A short phrase such as "contacted 3 times this campaign" or
        "spent 25 minutes on the website".
    """
    return _TEXTS[spec.name](group, row)
