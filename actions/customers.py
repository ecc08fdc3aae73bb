"""Actions about the customer base."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.base import call_crm
from actions.identity import identify
from actions.leads import permitted
from crm_ml import queries
from crm_ml.db import session_scope
from crm_ml.identity import Identity

logger = logging.getLogger(__name__)


def _stats(identity: Identity) -> queries.CustomerBaseStats:
    with session_scope() as s:
        return queries.customer_base_stats(session=s, identity=identity)


class ActionCustomerCount(Action):
    """Answer "how many customers do we have" from the CRM (staff only)."""

    def name(self) -> str:
        return "action_customer_count"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        identity = identify(tracker)
        # Company-wide figures: customers and anonymous visitors get utter_not_allowed.
        if not permitted(dispatcher, identity, "analytics.read"):
            return []
        stats = await call_crm(dispatcher, self.name(), lambda: _stats(identity))
        if stats is not None:
            dispatcher.utter_message(
                text=(
                    f"We have {stats.customers:,} customers in the CRM; "
                    f"{stats.active_customers:,} of them have bought at least once, "
                    f"across {stats.countries} countries and {stats.orders:,} orders."
                )
            )
        return []
