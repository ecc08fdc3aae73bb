"""Format checks of what a customer types or says, before anything reaches the database."""

from __future__ import annotations

import logging
import re

from crm_ml.errors import CRMError

__all__ = [
    "MAX_ADDRESS",
    "MAX_TEXT",
    "MIN_ADDRESS",
    "InvalidRequest",
    "clean_address",
    "clean_email",
    "clean_order_id",
    "clean_text",
]

logger = logging.getLogger(__name__)


_ORDER_ID_RE = re.compile(r"^C?\d{6}$")
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}$")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES_RE = re.compile(r"\s+")
MAX_TEXT = 2000
MIN_ADDRESS, MAX_ADDRESS = 10, 300


class InvalidRequest(CRMError):
    """A value that failed its format check (the actions check first)."""


def clean_order_id(value: object) -> str | None:
    """An Online Retail II invoice number (``536365``, ``C536379``), or None.

    Spaces and a lower-case ``c`` are tolerated (``c 536379`` -> ``C536379``).
    """
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    text = str(value).strip().upper().replace(" ", "")
    return text if _ORDER_ID_RE.match(text) else None


def clean_email(value: object) -> str | None:
    """A plausible e-mail address, lower-cased, or None."""
    if not isinstance(value, str):
        return None
    text = value.strip().rstrip(".").lower()
    if len(text) > 254 or ".." in text or not _EMAIL_RE.match(text):
        return None
    return text


def clean_text(value: object, max_len: int = MAX_TEXT) -> str:
    """Free text from a customer: control characters removed, trimmed, bounded."""
    if not isinstance(value, str):
        return ""
    return _CONTROL_RE.sub(" ", value).strip()[:max_len]


def clean_address(value: object) -> str | None:
    """A postal address as typed or spoken, or None when it cannot be one.

    An address has at least two words, a digit (house number or postcode) and
    between :data:`MIN_ADDRESS` and :data:`MAX_ADDRESS` characters.
    """
    if not isinstance(value, str):
        return None
    text = _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", value)).strip(" ,.")
    if not MIN_ADDRESS <= len(text) <= MAX_ADDRESS:
        return None
    if len(text.split()) < 2 or not any(ch.isdigit() for ch in text):
        return None
    return text
