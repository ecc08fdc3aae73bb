"""Per-sender rate limiting for the public channels: an in-memory token bucket.

Each sender (``web:<session>``, ``tg:<chat>``, ``voice:<call>``, a REST sender)
has a bucket of ``capacity`` tokens that refills at ``capacity / per_seconds``
tokens a second; every message takes one token, and a message that finds the
bucket empty is refused with the time until the next token (``Retry-After``).
The default, 20 messages per 10 seconds, lets a person type as fast as they
like and stops a script flooding the assistant.

The limiter lives in the Rasa server's process (one per channel, see
:func:`limiter_for`), so it needs no store; several Rasa processes behind a load
balancer each limit on their own, which still bounds a flood. Memory is bounded:
at most ``max_keys`` buckets are kept, the least recently used dropped first
(a dropped bucket is a full one again, which only ever errs towards letting a
message through).

A client may name any sender id it likes on the REST channel, so a script
that rotates sender ids gets a fresh bucket per message. :func:`check_client`
adds a bucket per client address, with a larger budget (``CRM_RATE_LIMIT_IP``,
by default ten times the per-sender limit: a household or an office behind one
address still chats freely). The client address is the TCP peer; behind a
reverse proxy every request comes from the proxy, so the proxy's addresses go
in ``CRM_TRUSTED_PROXIES`` and the client is read from ``X-Forwarded-For``
(right to left, the first address that is not a trusted proxy); a header from
anyone else is ignored, since any client can write one. Loopback clients
(``CRM_RATE_LIMIT_IP_EXEMPT``, default ``127.0.0.0/8,::1``) have no address
bucket: they are this machine's own tools, tests and benchmarks, and a proxy on
this machine that is not declared trusted would otherwise put every user in one
bucket. See :class:`crm_ml.config.Settings` for a deployment behind a proxy.

Standard library only, so that the bot env can import it::

    from crm_ml.ratelimit import check_client, limiter_for

    decision = limiter_for("rest").check(sender_id)
    if decision.allowed:
        decision = check_client("rest", request.ip, request.headers.get("X-Forwarded-For"))
    if not decision.allowed:
        ...  # answer 429 with Retry-After: decision.retry_after_header
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Decision", "RateLimiter", "check_client", "client_address", "limiter_for",
           "parse_networks", "parse_spec", "POLITE_MESSAGE"]

logger = logging.getLogger(__name__)

DEFAULT_SPEC = "20/10"
IP_FACTOR = 10  # the per-address budget, in per-sender budgets, unless configured
DEFAULT_IP_EXEMPT = "127.0.0.0/8,::1"
DEFAULT_MAX_KEYS = 100_000
POLITE_MESSAGE = ("You're sending messages faster than I can read them. "
                  "Please wait a few seconds and try again.")
_SPEC_RE = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6}(?:\.\d+)?)\s*s?\s*$")


@dataclass(frozen=True)
class Decision:
    """The limiter's answer for one message.

    Attributes:
        allowed: Whether the message may go through.
        remaining: Whole tokens left after this message (0 when refused).
        retry_after: Seconds until a message would be allowed again (0.0 when allowed).
    """

    allowed: bool
    remaining: int
    retry_after: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """``retry_after`` as an HTTP ``Retry-After`` value: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


def parse_spec(spec: str | None) -> tuple[int, float] | None:
    """Parse ``"20/10"`` (20 messages per 10 seconds; ``"20/10s"`` too).

    Returns:
        ``(capacity, per_seconds)``, or None for ``off``, ``0``, ``none`` or an empty
        value (no limit).

    Raises:
        ValueError: anything else that is not ``<messages>/<seconds>`` with both positive.
    """
    text = (spec or "").strip().lower()
    if text in {"", "0", "off", "none", "no", "false"}:
        return None
    match = _SPEC_RE.match(text)
    if not match:
        raise ValueError(f"rate limit {spec!r}: expected <messages>/<seconds>, e.g. 20/10")
    capacity, per = int(match.group(1)), float(match.group(2))
    if capacity < 1 or per <= 0:
        raise ValueError(f"rate limit {spec!r}: both numbers must be positive")
    return capacity, per


class RateLimiter:
    """A token bucket per key (thread-safe; one lock, O(1) per check).

    Args:
        capacity: Messages a sender may send in a burst (the bucket's size).
        per_seconds: Seconds in which a sender earns ``capacity`` tokens back.
        max_keys: Buckets kept at most (least recently used dropped first).
        clock: A monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(self, capacity: int = 20, per_seconds: float = 10.0, *,
                 max_keys: int = DEFAULT_MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if per_seconds <= 0:
            raise ValueError("per_seconds must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.capacity = int(capacity)
        self.per_seconds = float(per_seconds)
        self.rate = self.capacity / self.per_seconds  # tokens per second
        self.max_keys = int(max_keys)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str | None, **kwargs: object) -> RateLimiter | None:
        """A limiter for ``"20/10"``; None when ``spec`` turns limiting off."""
        parsed = parse_spec(spec)
        if parsed is None:
            return None
        return cls(parsed[0], parsed[1], **kwargs)  # type: ignore[arg-type]

    def check(self, key: str, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them.

        A refused message takes nothing, so a sender who waits ``retry_after``
        seconds is let through again.
        """
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.capacity), now))
            tokens = min(float(self.capacity), tokens + max(0.0, now - at) * self.rate)
            if tokens >= cost:
                tokens -= cost
                decision = Decision(True, int(tokens + 1e-9))
            else:
                decision = Decision(False, 0, (cost - tokens) / self.rate)
            self._buckets[key] = (tokens, now)  # most recently used at the end
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return decision

    def allow(self, key: str) -> bool:
        """Whether one message of ``key`` may go through now (takes a token if so)."""
        return self.check(key).allowed

    def reset(self, key: str | None = None) -> None:
        """Forget one sender's bucket, or every bucket."""
        with self._lock:
            if key is None:
                self._buckets.clear()
            else:
                self._buckets.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


_limiters: dict[str, RateLimiter | None] = {}
_limiters_lock = threading.Lock()


def configured_spec() -> str:
    """The configured limit: the settings' ``rate_limit`` (``CRM_RATE_LIMIT``), else 20/10."""
    from crm_ml.config import get_settings

    return str(getattr(get_settings(), "rate_limit", DEFAULT_SPEC) or DEFAULT_SPEC)


def limiter_for(channel: str, spec: str | None = None) -> _Passthrough | RateLimiter:
    """The process-wide limiter of a channel (``rest``, ``socketio``, ``telegram``...).

    Each channel gets its own buckets, so a sender id that two channels share
    (they do not, being namespaced) would not be counted twice.

    Args:
        channel: The channel's name.
        spec: ``"<messages>/<seconds>"``; default :func:`configured_spec`. Used on the
            channel's first call only.

    Returns:
        A :class:`RateLimiter`, or a limiter that allows everything when limiting is off.
    """
    with _limiters_lock:
        if channel not in _limiters:
            _limiters[channel] = RateLimiter.from_spec(
                spec if spec is not None else configured_spec())
        limiter = _limiters[channel]
    return limiter if limiter is not None else _PASSTHROUGH


def reset_limiters() -> None:
    """Forget every channel's limiter (tests; a changed configuration)."""
    with _limiters_lock:
        _limiters.clear()


class _Passthrough:
    """The limiter used when limiting is off: everything is allowed."""

    capacity = 0

    def check(self, key: str, cost: float = 1.0) -> Decision:
        return Decision(True, 0)

    def allow(self, key: str) -> bool:
        return True

    def reset(self, key: str | None = None) -> None:
        return None


_PASSTHROUGH = _Passthrough()


# --------------------------------------------------------------------------- per client address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def configured_ip_spec() -> str:
    """The per-address limit: ``rate_limit_ip`` (``CRM_RATE_LIMIT_IP``), else
    :data:`IP_FACTOR` times the per-sender limit (``off`` when that is off)."""
    from crm_ml.config import get_settings

    given = str(getattr(get_settings(), "rate_limit_ip", "") or "").strip()
    if given:
        return given
    parsed = parse_spec(configured_spec())
    if parsed is None:
        return "off"
    return f"{parsed[0] * IP_FACTOR}/{parsed[1]:g}"


def _address(text: str | None) -> Address | None:
    try:
        addr = ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return addr


@functools.lru_cache(maxsize=32)
def parse_networks(spec: str | None) -> tuple[Network, ...]:
    """Parse ``"10.0.0.0/8, 192.0.2.7, ::1"`` (addresses or networks, comma separated).

    ``none``, ``off`` or an empty value mean no address at all. An entry that is
    neither an address nor a network is left out, with a warning: the lists are
    trusted proxies and exempt clients, so leaving one out only ever limits more.
    """
    text = (spec or "").strip().lower()
    if text in {"", "none", "off", "no", "false", "0"}:
        return ()
    networks: list[Network] = []
    for item in text.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            logger.warning("ignoring %r: not an IP address or network", item[:64])
    return tuple(networks)


def _within(addr: Address, networks: tuple[Network, ...]) -> bool:
    return any(addr.version == net.version and addr in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None = None,
                   trusted: tuple[Network, ...] = ()) -> str:
    """The client's address: the TCP ``peer``, or who a trusted proxy says it serves.

    Only when ``peer`` is one of the ``trusted`` proxies is ``forwarded_for`` (the
    ``X-Forwarded-For`` values, comma separated, oldest hop first) read: from the
    right, each proxy appends the address it got the request from, so the first
    address that is not a trusted proxy is the client. What lies left of it was
    written by the client and is never believed. An entry that is not an address
    stops the walk at the last proxy that handed it on.

    Returns:
        The address in canonical form (``::ffff:10.0.0.1`` as ``10.0.0.1``), or
        ``peer`` as given when it is not an IP address (a Unix socket).
    """
    addr = _address(peer)
    if addr is None:
        return (peer or "unknown")[:64]
    if not trusted or not _within(addr, trusted):
        return str(addr)
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        previous = _address(hop)
        if previous is None:
            break
        addr = previous
        if not _within(addr, trusted):
            break
    return str(addr)


_warned_untrusted_header = False


def check_client(channel: str, peer: str | None, forwarded_for: str | None = None
                 ) -> Decision:
    """Take a token from the bucket of the message's client address (see the module doc).

    Args:
        channel: The channel's name; its address buckets are ``<channel>:ip``.
        peer: The TCP peer's address (Sanic's ``request.ip``).
        forwarded_for: The ``X-Forwarded-For`` header, if any (read only when the
            peer is a trusted proxy, ``CRM_TRUSTED_PROXIES``).
    """
    global _warned_untrusted_header
    from crm_ml.config import get_settings

    settings = get_settings()
    trusted = parse_networks(str(getattr(settings, "trusted_proxies", "") or ""))
    client = client_address(peer, forwarded_for, trusted)
    if forwarded_for and not trusted and not _warned_untrusted_header:
        _warned_untrusted_header = True
        logger.warning("X-Forwarded-For ignored: no trusted proxy is configured. Behind a "
                       "reverse proxy, set CRM_TRUSTED_PROXIES to its address(es), or every "
                       "user shares the proxy's rate limit")
    exempt = parse_networks(str(getattr(settings, "rate_limit_ip_exempt", DEFAULT_IP_EXEMPT)))
    addr = _address(client)
    if addr is not None and _within(addr, exempt):
        return Decision(True, 0)
    return limiter_for(f"{channel}:ip", configured_ip_spec()).check(client)
