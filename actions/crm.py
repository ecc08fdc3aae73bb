"""The one way actions call the CRM: a crm_ml function, never an error shown to the user.

At the call site the crm_ml function is named and its arguments are given, as in
``await crm_call(dispatcher, sales.hot_leads, identity=identity, limit=5)``:
:func:`crm_call` runs it in a worker thread inside one short transaction
(``fn(session=..., **kwargs)``) and turns every failure into a polite answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

from rasa_sdk.executor import CollectingDispatcher

from actions.speech import say_list, whose
from crm_ml import sales
from crm_ml.authz import Forbidden
from crm_ml.db import session_scope
from crm_ml.errors import CRMError, CRMUnavailable, NotFound

logger = logging.getLogger(__name__)

__all__ = ["NOT_FOUND", "crm_call"]


class _NotFoundType:
    """The type of :data:`NOT_FOUND`."""

    def __repr__(self) -> str:
        return "NOT_FOUND"


NOT_FOUND: Final = _NotFoundType()
"""What :func:`crm_call` returns after answering its ``not_found`` response."""

# Lookups of the sales functions that have an answer of their own: a lead or
# customer out of the caller's reach, an ambiguous lead name, a model output
# not computed yet.
_LOOKUP_PROBLEMS = (sales.LeadNotFound, sales.CustomerNotFound, sales.AmbiguousLead,
                    sales.NoData)


async def crm_call(dispatcher: CollectingDispatcher, fn: Callable[..., Any], /, *,
                   not_found: str | None = None, **kwargs: Any) -> Any:
    """Run ``fn(session=<one transaction>, **kwargs)`` in a worker thread; answer any failure.

    Args:
        dispatcher: Where the answer to a failure goes.
        fn: The crm_ml function (one call into crm_ml); it takes ``session`` by keyword.
        not_found: The response for a record that is unknown or not the caller's;
            when given, :data:`NOT_FOUND` is returned after it (so that the caller
            can forget the number it was given). By default ``utter_not_found``
            is said and None returned.
        **kwargs: The keyword arguments of ``fn`` besides ``session``.

    Returns:
        The function's result; :data:`NOT_FOUND` after the ``not_found`` response;
        None after any other polite answer (the user never sees an error).
    """

    def run() -> Any:
        with session_scope() as session:
            return fn(session=session, **kwargs)

    name = getattr(fn, "__qualname__", repr(fn))
    try:
        return await asyncio.to_thread(run)
    except _LOOKUP_PROBLEMS as exc:
        explain_lookup(dispatcher, exc)
    except NotFound:
        if not_found is not None:
            dispatcher.utter_message(response=not_found)
            return NOT_FOUND
        dispatcher.utter_message(response="utter_not_found")
    except Forbidden:
        dispatcher.utter_message(response="utter_not_allowed")
    except CRMUnavailable:
        logger.exception("%s: the CRM is unavailable", name)
        dispatcher.utter_message(response="utter_crm_unavailable")
    except CRMError:
        logger.exception("%s: CRM error", name)
        dispatcher.utter_message(response="utter_crm_unavailable")
    except Exception:  # noqa: BLE001 - the user must never see a stack trace
        logger.exception("%s: unexpected error", name)
        dispatcher.utter_message(response="utter_crm_unavailable")
    return None


def explain_lookup(dispatcher: CollectingDispatcher, error: Exception) -> None:
    """Answer a sales lookup that found nothing the caller may see, without telling why."""
    if isinstance(error, sales.LeadNotFound):
        lead = (f"lead {error.lead_id}" if error.lead_id is not None
                else f"a lead called {error.lead_name}")
        dispatcher.utter_message(response="utter_lead_not_found", lead=lead,
                                 whose=whose(error.scope, "leads"))
    elif isinstance(error, sales.CustomerNotFound):
        dispatcher.utter_message(response="utter_customer_not_found",
                                 customer_id=error.customer_id,
                                 whose=whose(error.scope, "accounts")
                                 if error.scope != "all" else "our customers")
    elif isinstance(error, sales.AmbiguousLead):
        options = say_list([f"lead {i} ({status})" for i, status in error.candidates])
        response = ("utter_ambiguous_lead" if error.count <= len(error.candidates)
                    else "utter_ambiguous_lead_best")
        dispatcher.utter_message(response=response, count=f"{error.count:,}",
                                 lead_name=error.lead_name, options=options,
                                 first=error.candidates[0][0])
    elif isinstance(error, sales.NoData):
        response = {"forecast": "utter_no_forecast", "segments": "utter_no_segments",
                    "topics": "utter_no_topics", "next_best_action": "utter_no_next_action",
                    "next_best_action_lead": "utter_no_next_action_lead"}
        dispatcher.utter_message(response=response.get(error.what, "utter_crm_unavailable"))
