"""Signed, expiring links: a URL anyone may open until it expires, and nobody may alter.

The assistant shows staff the forecast chart in chat as an image, and chat clients
(the web chat, Telegram's upload) fetch it without a console session. The action
therefore hands out a link such as::

    /charts/forecast.png?series=total&weeks=13&exp=1700000900&sig=<hex>

where ``exp`` is a unix time and ``sig`` is the hex HMAC-SHA256, under
``CRM_IDENTITY_SECRET``, of the canonical form of the link: its path, ``?``, and
every query parameter but ``sig``, sorted and percent-encoded
(``/charts/forecast.png?exp=1700000900&series=total&weeks=13``). The path binds a
signature to one route, so it can never pass for a signed identity
(:mod:`crm_ml.identity` signs ``rep:2`` and the like). Any change of a parameter,
an added or repeated one, or a late use makes the link invalid.

Standard library only: the action server and the console share this module.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlencode

__all__ = [
    "DEFAULT_TTL",
    "FORECAST_CHART",
    "InvalidLink",
    "LinkExpired",
    "sign_query",
    "verify_query",
]

logger = logging.getLogger(__name__)

FORECAST_CHART = "/charts/forecast.png"
DEFAULT_TTL = 15 * 60  # seconds a link stays valid


class InvalidLink(ValueError):
    """The link carries no signature, a wrong one, or malformed parameters."""


class LinkExpired(InvalidLink):
    """The link's signature is right, but its ``exp`` has passed."""


def _canonical(path: str, pairs: Iterable[tuple[str, str]]) -> str:
    return f"{path}?{urlencode(sorted(pairs), quote_via=quote, safe='')}"


def _mac(secret: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    message = _canonical(path, pairs).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_query(path: str, params: Mapping[str, str | int], secret: str, *,
               ttl: int = DEFAULT_TTL, now: float | None = None) -> str:
    """The query string of a link to ``path`` with ``params``, valid for ``ttl`` seconds.

    Args:
        path: The route the link opens (e.g. :data:`FORECAST_CHART`).
        params: The route's parameters (``exp`` and ``sig`` are added).
        secret: ``CRM_IDENTITY_SECRET``.
        ttl: Seconds from ``now`` until the link expires.
        now: Unix time (default: the clock).

    Returns:
        ``series=total&weeks=13&exp=...&sig=...`` (without the ``?``).

    Raises:
        ValueError: no secret (an empty key would let anyone sign), or ``params``
            already holds ``exp`` or ``sig``.
    """
    if not secret:
        raise ValueError("CRM_IDENTITY_SECRET is not set: links cannot be signed")
    if "exp" in params or "sig" in params:
        raise ValueError("exp and sig are added by sign_query")
    exp = int(now if now is not None else time.time()) + ttl
    pairs = [(str(k), str(v)) for k, v in params.items()] + [("exp", str(exp))]
    sig = _mac(secret, path, pairs)
    return urlencode([*pairs, ("sig", sig)], quote_via=quote, safe="")


def verify_query(path: str, pairs: Iterable[tuple[str, str]], secret: str, *,
                 now: float | None = None) -> None:
    """Check a link's query: a valid signature over every parameter, not yet expired.

    Args:
        path: The route that was called (the constant the link was signed for).
        pairs: The request's query parameters, every one, in any order.
        secret: ``CRM_IDENTITY_SECRET``; when empty, no link is valid.
        now: Unix time (default: the clock).

    Raises:
        LinkExpired: the signature is valid but ``exp`` has passed.
        InvalidLink: no secret, a missing, wrong or repeated ``sig`` or ``exp``, or
            any parameter repeated.
    """
    items = [(str(k), str(v)) for k, v in pairs]
    names = [k for k, _ in items]
    if len(set(names)) != len(names):
        raise InvalidLink("a parameter is repeated")
    given = dict(items)
    sig, exp = given.pop("sig", None), given.get("exp")
    if not secret or not sig or exp is None:
        raise InvalidLink("not a signed link")
    expected = _mac(secret, path, given.items())
    # Bytes: on str, compare_digest raises TypeError for non-ASCII text.
    if not hmac.compare_digest(expected.encode(),
                               sig.strip().lower().encode("utf-8", "replace")):
        raise InvalidLink("wrong signature")
    try:
        expires = int(exp)
    except ValueError as exc:  # signed by us, so never; but keep the check total
        raise InvalidLink("exp is not a unix time") from exc
    if (now if now is not None else time.time()) > expires:
        raise LinkExpired("the link has expired")
