"""Personal data in text: mask e-mail addresses, phone numbers and card-like numbers.

Used for logs (:class:`MaskingFilter` on the root logger's handlers) and for
transcripts shown outside the escalation. Standard library only, so that the
bot env can install the same filter.
"""

from __future__ import annotations

import logging
import re

__all__ = [
    "CARD_RE",
    "EMAIL_RE",
    "MaskingFilter",
    "PHONE_RE",
    "install_log_masking",
    "mask",
]

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by spaces or dashes: card-like numbers.
CARD_RE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
# Phone numbers: optional +, then 9-15 digits with spaces, dots, dashes or brackets.
PHONE_RE = re.compile(r"(?<![\w@])\+?\(?\d{2,4}\)?(?:[ .-]?\d{2,4}){2,4}(?![\w@])")


_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _mask_email(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).partition("@")
    return f"{local[:1]}***@{domain}"


def _mask_digits(match: re.Match[str]) -> str:
    found = match.group(0)
    if _DATE_RE.match(found):  # 2011-12-09 10:00 is a date, not a phone number
        return found
    digits = re.sub(r"\D", "", found)
    if len(digits) < 9:  # order numbers (6 digits), customer ids (5), amounts: not PII
        return match.group(0)
    return f"[number ending {digits[-4:]}]" if len(digits) >= 13 else "[phone]"


def mask(text: str) -> str:
    """Return ``text`` with e-mails, card-like and phone numbers masked."""
    if not text:
        return text
    text = EMAIL_RE.sub(_mask_email, text)
    text = CARD_RE.sub(_mask_digits, text)
    return PHONE_RE.sub(_mask_digits, text)


class MaskingFilter(logging.Filter):
    """Masks personal data in every log record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logged as it is
            return True
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Add :class:`MaskingFilter` to every handler of ``logger`` (default: root)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
