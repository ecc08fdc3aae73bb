"""Who the action is talking to, from the signed metadata or a verification."""

from __future__ import annotations

from rasa_sdk import Tracker

from crm_ml.config import get_settings
from crm_ml.identity import ANONYMOUS, Identity, from_metadata

VERIFIED_SLOT = "verified_customer"


def identify(tracker: Tracker) -> Identity:
    """The caller's identity.

    A valid signature in the latest message's metadata wins; otherwise a customer
    verified earlier in this conversation (order number plus e-mail) is that
    customer; otherwise the caller is anonymous.
    """
    metadata = (tracker.latest_message or {}).get("metadata")
    signed = from_metadata(metadata, get_settings().identity_secret)
    if signed != ANONYMOUS:
        return signed
    verified = tracker.get_slot(VERIFIED_SLOT)
    if isinstance(verified, (int, float, str)) and str(verified).isdigit():
        return Identity("customer", int(verified))
    return ANONYMOUS


def channel_of(tracker: Tracker) -> str:
    """The channel of the conversation (``telegram``, ``web``, ``voice``, ``rest``...)."""
    sender = tracker.sender_id or ""
    prefix = sender.split(":", 1)[0] if ":" in sender else ""
    named = {"tg": "telegram", "web": "web", "voice": "voice"}.get(prefix)
    return named or tracker.get_latest_input_channel() or "rest"
