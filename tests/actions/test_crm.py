"""actions.crm: the one CRM call, and the polite answer to each failure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import crm as actions_crm
from actions.crm import NOT_FOUND, crm_call
from crm_ml import sales
from crm_ml.authz import Forbidden
from crm_ml.errors import CRMUnavailable, NotFound
from tests.actions.wording import render


@pytest.fixture(autouse=True)
def fake_session(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Sessions opened by crm_call, without a database."""
    opened: list[Any] = []

    @contextmanager
    def session_scope(url: str | None = None) -> Iterator[Any]:
        opened.append(object())
        yield opened[-1]

    monkeypatch.setattr(actions_crm, "session_scope", session_scope)
    return opened


def call(fn: Any, **kwargs: Any) -> tuple[Any, list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    result = asyncio.run(crm_call(dispatcher, fn, **kwargs))
    return result, dispatcher.messages


def raising(error: Exception) -> Any:
    def fn(**_kwargs: Any) -> Any:
        raise error

    return fn


def test_the_function_gets_a_session_and_its_arguments(fake_session: list[Any]) -> None:
    result, said = call(lambda *, session, limit: (session, limit), limit=5)
    assert result == (fake_session[0], 5) and said == []


@pytest.mark.parametrize("error,response", [
    (NotFound("order"), "utter_not_found"),
    (Forbidden("no"), "utter_not_allowed"),
    (CRMUnavailable("down"), "utter_crm_unavailable"),
    (RuntimeError("bug"), "utter_crm_unavailable"),
])
def test_failures_are_answered_politely(error: Exception, response: str) -> None:
    result, said = call(raising(error))
    assert result is None and [m["response"] for m in said] == [response]


def test_a_named_not_found_answer_returns_not_found() -> None:
    result, said = call(raising(NotFound("order")), not_found="utter_order_not_found")
    assert result is NOT_FOUND and [m["response"] for m in said] == ["utter_order_not_found"]
    result, said = call(raising(CRMUnavailable("down")), not_found="utter_order_not_found")
    assert result is None and [m["response"] for m in said] == ["utter_crm_unavailable"]


def test_lookups_out_of_reach_have_their_own_answers() -> None:
    _, said = call(raising(sales.LeadNotFound(lead_id=7, scope="team")))
    assert said[0]["response"] == "utter_lead_not_found"
    assert (said[0]["lead"], said[0]["whose"]) == ("lead 7", "your team's leads")
    _, said = call(raising(sales.NoData("forecast")))
    assert said[0]["response"] == "utter_no_forecast"


def test_an_ambiguous_name_lists_the_leads() -> None:
    few = sales.AmbiguousLead(lead_name="Olivia Smith", candidates=[(416, "new"), (415, "lost")],
                              count=2)
    many = sales.AmbiguousLead(lead_name="Olivia Smith", candidates=[(416, "new"), (415, "lost")],
                               count=1200)
    assert render(call(raising(few))[1][0]) == (
        "There are 2 leads called Olivia Smith: lead 416 (new) and lead 415 (lost). Which one "
        "do you mean? Please say its number, like 'lead 416'.")
    assert render(call(raising(many))[1][0]) == (
        "There are 1,200 leads called Olivia Smith; the best scored are lead 416 (new) and "
        "lead 415 (lost). Which one do you mean? Please say its number, like 'lead 416'.")
