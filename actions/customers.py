"""Actions about the customer base."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import crm_call
from actions.gate import permitted
from actions.identity import identify
from crm_ml import queries

logger = logging.getLogger(__name__)

__all__ = ["ActionCustomerCount"]


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
        stats = await crm_call(dispatcher, queries.customer_base_stats, identity=identity)
        if stats is not None:
            dispatcher.utter_message(
                response="utter_customer_count", customers=f"{stats.customers:,}",
                active_customers=f"{stats.active_customers:,}",
                countries=str(stats.countries), orders=f"{stats.orders:,}")
        return []
