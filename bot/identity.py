"""The signed identity of a message, verified once in the Rasa process (bot env).

The escalation policy (several times per turn: once per predicted action) and
the event broker (once per stored message) both need to know who sent a user
message. Both ask :func:`verified_identity`, which checks the HMAC of
``metadata["auth"]`` once and remembers the answer for that exact
``(secret, user, sig)``: a signature's verdict cannot change while the secret
stays the same, so a remembered answer is the one a new check would give. The
action server, another process, checks again on its side.
"""

import logging
import threading
from collections import OrderedDict
from typing import Any, Optional, Tuple

from crm_ml.identity import Identity, from_metadata

logger = logging.getLogger(__name__)

__all__ = ["verified_identity"]

_CAPACITY = 4096
_Key = Tuple[str, str, str]
_verdicts: "OrderedDict[_Key, Identity]" = OrderedDict()
_lock = threading.Lock()  # the broker's writer thread and the event loop both ask


def _key(metadata: Any, secret: str) -> Optional[_Key]:
    """``(secret, user, sig)`` of a message that claims an identity, else None."""
    auth = metadata.get("auth") if isinstance(metadata, dict) else None
    if not secret or not isinstance(auth, dict):
        return None
    user, sig = auth.get("user"), auth.get("sig")
    if not isinstance(user, str) or not isinstance(sig, str):
        return None
    return secret, user, sig


def verified_identity(metadata: Any, secret: str) -> Identity:
    """The identity signed in ``metadata`` (anonymous when none is, or it is forged).

    Same answer as :func:`crm_ml.identity.from_metadata`; the HMAC is computed
    once per distinct signature (a bounded, least-recently-used memory).

    Args:
        metadata: The message metadata (any JSON value).
        secret: ``CRM_IDENTITY_SECRET``; when empty, nobody can be verified.

    Returns:
        The verified identity, or ``crm_ml.identity.ANONYMOUS``.
    """
    key = _key(metadata, secret)
    if key is None:
        return from_metadata(metadata, secret)  # anonymous without a check
    with _lock:
        known = _verdicts.get(key)
        if known is not None:
            _verdicts.move_to_end(key)
            return known
    identity = from_metadata({"auth": {"user": key[1], "sig": key[2]}}, secret)
    with _lock:
        _verdicts[key] = identity
        while len(_verdicts) > _CAPACITY:
            _verdicts.popitem(last=False)
    return identity
