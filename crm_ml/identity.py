"""Who is talking: signed identities and channel links.

Web and REST callers prove who they are with message metadata
``{"auth": {"user": "<id>", "sig": "<hex>"}}`` where ``<hex>`` is
HMAC-SHA256 of ``<id>`` under ``CRM_IDENTITY_SECRET`` (DESIGN.md, contract).
``<id>`` is ``rep:<n>``, ``manager:<n>``, ``agent:<n>`` or ``customer:<id>``.
Without a valid signature the sender is anonymous. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ANONYMOUS",
    "Identity",
    "ROLES",
    "from_metadata",
    "parse_user",
    "sign",
]

logger = logging.getLogger(__name__)

ROLES = ("anonymous", "customer", "rep", "manager", "agent")
_USER_RE = re.compile(r"^(customer|rep|manager|agent):([0-9]{1,9})$")


@dataclass(frozen=True)
class Identity:
    """A caller's role and number (``customer`` 12347, ``rep`` 2, ...)."""

    role: str
    number: int | None = None

    @property
    def user(self) -> str:
        """The identity as written in metadata (``rep:2``), or ``anonymous``."""
        return "anonymous" if self.number is None else f"{self.role}:{self.number}"

    @property
    def is_staff(self) -> bool:
        """Reps, managers and agents."""
        return self.role in {"rep", "manager", "agent"}


ANONYMOUS = Identity("anonymous")


def sign(user: str, secret: str) -> str:
    """Return the hex HMAC-SHA256 of ``user`` under ``secret``."""
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def parse_user(user: str) -> Identity | None:
    """Parse ``rep:2`` into an Identity; None when it is not a valid id."""
    match = _USER_RE.match(user or "")
    if not match:
        return None
    return Identity(match.group(1), int(match.group(2)))


def from_metadata(metadata: Any, secret: str) -> Identity:
    """Return the signed identity in message metadata, else anonymous.

    Args:
        metadata: The message metadata (any JSON value; malformed means anonymous).
        secret: ``CRM_IDENTITY_SECRET``; when empty, nobody can be verified.
    """
    if not secret or not isinstance(metadata, dict):
        return ANONYMOUS
    auth = metadata.get("auth")
    if not isinstance(auth, dict):
        return ANONYMOUS
    user, sig = auth.get("user"), auth.get("sig")
    if not isinstance(user, str) or not isinstance(sig, str):
        return ANONYMOUS
    ident = parse_user(user)
    if ident is None:
        return ANONYMOUS
    # Bytes: on str, compare_digest raises TypeError for non-ASCII text.
    if not hmac.compare_digest(sign(user, secret).encode(),
                               sig.strip().lower().encode("utf-8", "replace")):
        logger.warning("forged or stale signature for a %s identity", ident.role)
        return ANONYMOUS
    return ident
