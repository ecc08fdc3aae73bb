"""What every action shares: a CRM call that never leaks an error to the user."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from rasa_sdk.executor import CollectingDispatcher

from crm_ml.authz import Forbidden
from crm_ml.errors import CRMError, CRMUnavailable, NotFound

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def call_crm(
    dispatcher: CollectingDispatcher, action: str, fn: Callable[[], T]
) -> T | None:
    """Run a blocking CRM call in a worker thread; on failure answer politely.

    Args:
        dispatcher: Where the polite answer goes if the call fails.
        action: Name of the calling action, for the log.
        fn: The blocking call (one call into crm_ml).

    Returns:
        The call's result, or None after a polite answer was sent.
    """
    try:
        return await asyncio.to_thread(fn)
    except NotFound:
        dispatcher.utter_message(response="utter_not_found")
    except Forbidden:
        dispatcher.utter_message(response="utter_not_allowed")
    except CRMUnavailable:
        logger.exception("%s: the CRM is unavailable", action)
        dispatcher.utter_message(response="utter_crm_unavailable")
    except CRMError:
        logger.exception("%s: CRM error", action)
        dispatcher.utter_message(response="utter_crm_unavailable")
    except Exception:  # noqa: BLE001 - the user must never see a stack trace
        logger.exception("%s: unexpected error", action)
        dispatcher.utter_message(response="utter_crm_unavailable")
    return None
