"""Who the action is talking to, from the signed metadata or a verification."""

from __future__ import annotations

from rasa_sdk import Tracker

from crm_ml.config import get_settings
from crm_ml.identity import ANONYMOUS, Identity, from_metadata

__all__ = ["VERIFIED_SLOT", "identify"]

VERIFIED_SLOT = "verified_customer"


def identify(tracker: Tracker) -> Identity:
    """The caller's identity.

    A valid signature in the latest message's metadata wins; otherwise a customer
    verified earlier in this conversation (order number plus e-mail) is that
    customer; otherwise the caller is anonymous.

    Args:
        tracker: The conversation.

    Returns:
        The signed identity, the verified customer, or the anonymous identity.
    """
    metadata = (tracker.latest_message or {}).get("metadata")
    signed = from_metadata(metadata, get_settings().identity_secret)
    if signed != ANONYMOUS:
        return signed
    verified = tracker.get_slot(VERIFIED_SLOT)
    if isinstance(verified, (int, float, str)) and str(verified).isdigit():
        return Identity("customer", int(verified))
    return ANONYMOUS

