"""The token buckets of the public channels (crm_ml/ratelimit.py): per sender, per address."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from crm_ml import ratelimit
from crm_ml.config import get_settings
from crm_ml.ratelimit import Decision, RateLimiter, limiter_for, parse_spec

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_burst_up_to_capacity_then_refused(clock: FakeClock) -> None:
    limiter = RateLimiter(20, 10, clock=clock)
    decisions = [limiter.check("web:a") for _ in range(20)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == list(range(19, -1, -1))
    refused = limiter.check("web:a")
    assert refused == Decision(False, 0, pytest.approx(0.5))  # 2 tokens a second
    assert refused.retry_after_header == "1"


def test_tokens_come_back_at_the_configured_rate(clock: FakeClock) -> None:
    limiter = RateLimiter(20, 10, clock=clock)
    for _ in range(20):
        limiter.check("s")
    clock.advance(0.49)
    assert not limiter.allow("s")
    clock.advance(0.02)  # 0.51 s: one token (2/s)
    assert limiter.allow("s")
    assert not limiter.allow("s")
    clock.advance(10)  # a full bucket again, never more than capacity
    assert sum(limiter.allow("s") for _ in range(25)) == 20


def test_a_refused_message_costs_nothing(clock: FakeClock) -> None:
    """A sender who keeps hammering is still let through after waiting retry_after."""
    limiter = RateLimiter(2, 10, clock=clock)  # one token every 5 s
    assert limiter.allow("s") and limiter.allow("s")
    for _ in range(50):
        assert not limiter.allow("s")
    wait = limiter.check("s").retry_after
    assert wait == pytest.approx(5.0)
    clock.advance(wait)
    assert limiter.allow("s")


def test_senders_are_independent(clock: FakeClock) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    for _ in range(3):
        assert limiter.allow("tg:1")
    assert not limiter.allow("tg:1")
    assert limiter.allow("tg:2")
    assert limiter.allow("web:tg:1")


def test_retry_after_header_is_whole_seconds_at_least_one(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 30, clock=clock)
    assert limiter.allow("s")
    d = limiter.check("s")
    assert not d.allowed and d.retry_after == pytest.approx(30)
    assert d.retry_after_header == "30"
    clock.advance(29.2)
    assert limiter.check("s").retry_after_header == "1"  # 0.8 s rounds up
    assert Decision(False, 0, 0.0).retry_after_header == "1"


def test_memory_is_bounded_least_recently_used_dropped(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    assert not limiter.allow("a")  # "a" is now the most recently used
    assert limiter.allow("d")  # evicts "b", the least recently used
    assert len(limiter) == 3
    assert not limiter.allow("a") and not limiter.allow("c")
    assert limiter.allow("b")  # forgotten, so a full bucket again


def test_reset(clock: FakeClock) -> None:
    limiter = RateLimiter(1, 60, clock=clock)
    limiter.allow("a"), limiter.allow("b")
    limiter.reset("a")
    assert limiter.allow("a") and not limiter.allow("b")
    limiter.reset()
    assert len(limiter) == 0 and limiter.allow("b")


def test_thread_safety_exact_count() -> None:
    """8 threads hammering one sender: exactly ``capacity`` get through (no refill)."""
    limiter = RateLimiter(500, 10_000_000, clock=lambda: 0.0)
    allowed = []
    lock = threading.Lock()

    def worker() -> None:
        n = sum(limiter.allow("flood") for _ in range(1000))
        with lock:
            allowed.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


@pytest.mark.parametrize("spec, expected", [
    ("20/10", (20, 10.0)), (" 5 / 60s ", (5, 60.0)), ("1/0.5", (1, 0.5)),
    ("off", None), ("0", None), ("", None), (None, None), ("none", None),
])
def test_parse_spec(spec: str | None, expected: tuple[int, float] | None) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["20", "a/b", "20/0", "0/10", "-1/10", "20/10/5", "20 per 10"])
def test_parse_spec_refuses_nonsense(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_spec(spec)


@pytest.mark.parametrize("kwargs", [{"capacity": 0}, {"per_seconds": 0}, {"max_keys": 0}])
def test_constructor_checks(kwargs: dict) -> None:
    args = {"capacity": 1, "per_seconds": 1.0, **kwargs}
    with pytest.raises(ValueError):
        RateLimiter(args.pop("capacity"), args.pop("per_seconds"), **args)


def test_limiter_for_is_one_per_channel_and_can_be_off() -> None:
    ratelimit.reset_limiters()
    try:
        rest = limiter_for("rest", "2/60")
        assert limiter_for("rest") is rest  # the spec counts on the first call only
        assert limiter_for("telegram", "2/60") is not rest
        assert rest.allow("x") and rest.allow("x") and not rest.allow("x")
        assert limiter_for("telegram").allow("x")
        off = limiter_for("voice", "off")
        assert all(off.allow("x") for _ in range(1000))
        assert off.check("x") == Decision(True, 0)
    finally:
        ratelimit.reset_limiters()


def test_limiter_for_defaults_to_20_per_10_seconds(env: pytest.MonkeyPatch) -> None:
    ratelimit.reset_limiters()
    try:
        limiter = limiter_for("rest")
        assert isinstance(limiter, RateLimiter)
        assert (limiter.capacity, limiter.per_seconds) == (20, 10.0)
    finally:
        ratelimit.reset_limiters()


@pytest.mark.skipif(not (ROOT / ".venv-bot" / "bin" / "python").exists(), reason="no bot env")
def test_imports_in_the_bot_env() -> None:
    """Standard library only: the Rasa server (Python 3.10) can use it."""
    code = ("from crm_ml.ratelimit import RateLimiter; r = RateLimiter(1, 1); "
            "assert r.allow('a') and not r.allow('a'); print('ok')")
    out = subprocess.run([str(ROOT / ".venv-bot" / "bin" / "python"), "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------- per client address


def nets(spec: str) -> tuple:
    return ratelimit.parse_networks(spec)


@pytest.mark.parametrize("spec, expected", [
    ("127.0.0.0/8,::1", ["127.0.0.0/8", "::1/128"]), (" 10.0.0.7 ; 192.168.0.0/16 ",
                                                      ["10.0.0.7/32", "192.168.0.0/16"]),
    ("10.1.2.3/8", ["10.0.0.0/8"]), ("none", []), ("", []), ("off", []),
    ("nginx, 10.0.0.1", ["10.0.0.1/32"]),  # a name is no address: left out (limits more)
])
def test_parse_networks(spec: str, expected: list[str]) -> None:
    assert [str(n) for n in nets(spec)] == expected


@pytest.mark.parametrize("peer, header, trusted, client", [
    # No trusted proxy: the peer, whatever the header says (any client can write one).
    ("203.0.113.9", "198.51.100.1", "", "203.0.113.9"),
    ("127.0.0.1", "198.51.100.1", "", "127.0.0.1"),
    # A trusted proxy: the right-most address that is not a trusted proxy.
    ("127.0.0.1", "198.51.100.1", "127.0.0.1", "198.51.100.1"),
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", "127.0.0.1", "198.51.100.1"),  # spoofed left part
    ("10.0.0.2", "198.51.100.1, 10.0.0.5", "10.0.0.0/8", "198.51.100.1"),  # two proxies
    ("10.0.0.2", "10.0.0.9, 10.0.0.5", "10.0.0.0/8", "10.0.0.9"),  # only proxies: the first
    ("127.0.0.1", "", "127.0.0.1", "127.0.0.1"),  # the proxy sent no header
    ("127.0.0.1", "unknown, 198.51.100.1", "127.0.0.1", "198.51.100.1"),
    ("127.0.0.1", "198.51.100.1, garbage", "127.0.0.1", "127.0.0.1"),  # stop at the proxy
    # A peer that is not a trusted proxy: its header counts for nothing.
    ("203.0.113.9", "198.51.100.1", "127.0.0.1", "203.0.113.9"),
    # Canonical forms.
    ("::ffff:203.0.113.9", None, "", "203.0.113.9"),
    ("127.0.0.1", "[2001:db8::1]", "127.0.0.1", "2001:db8::1"),
    ("", None, "", "unknown"), ("/run/rasa.sock", None, "", "/run/rasa.sock"),
])
def test_client_address(peer: str, header: str | None, trusted: str, client: str) -> None:
    assert ratelimit.client_address(peer, header, nets(trusted)) == client


@pytest.fixture
def client_limits(env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean slate of limiters (they keep the configuration of their first call)."""
    ratelimit.reset_limiters()
    yield env
    ratelimit.reset_limiters()


def test_address_budget_defaults_to_ten_times_the_sender_budget(client_limits) -> None:
    assert ratelimit.configured_ip_spec() == "200/10"
    client_limits.setenv("CRM_RATE_LIMIT", "5/60")
    get_settings.cache_clear()
    assert ratelimit.configured_ip_spec() == "50/60"
    client_limits.setenv("CRM_RATE_LIMIT", "off")
    get_settings.cache_clear()
    assert ratelimit.configured_ip_spec() == "off"
    client_limits.setenv("CRM_RATE_LIMIT_IP", "7/1.5")
    get_settings.cache_clear()
    assert ratelimit.configured_ip_spec() == "7/1.5"


def test_one_address_rotating_senders_is_limited(client_limits) -> None:
    client_limits.setenv("CRM_RATE_LIMIT_IP", "3/60")
    allowed = [ratelimit.check_client("rest", "203.0.113.9").allowed for _ in range(5)]
    assert allowed == [True, True, True, False, False]
    refused = ratelimit.check_client("rest", "203.0.113.9")
    assert refused.retry_after == pytest.approx(20.0, abs=1.0)  # one token per 20 s
    assert ratelimit.check_client("rest", "203.0.113.10").allowed  # another address
    # A header from an untrusted peer does not make a new client of it.
    assert not ratelimit.check_client("rest", "203.0.113.9", "198.51.100.1").allowed


def test_loopback_is_exempt_unless_configured(client_limits) -> None:
    client_limits.setenv("CRM_RATE_LIMIT_IP", "1/60")
    for peer in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert all(ratelimit.check_client("rest", peer).allowed for _ in range(50)), peer
    client_limits.setenv("CRM_RATE_LIMIT_IP_EXEMPT", "none")
    get_settings.cache_clear()
    assert ratelimit.check_client("rest", "127.0.0.1").allowed
    assert not ratelimit.check_client("rest", "127.0.0.1").allowed


def test_behind_a_trusted_proxy_each_client_has_its_bucket(client_limits) -> None:
    """Every request comes from the proxy on loopback; the clients are in the header."""
    client_limits.setenv("CRM_RATE_LIMIT_IP", "2/60")
    client_limits.setenv("CRM_TRUSTED_PROXIES", "127.0.0.1")
    via_proxy = [ratelimit.check_client("rest", "127.0.0.1", "198.51.100.1").allowed
                 for _ in range(3)]
    assert via_proxy == [True, True, False]  # not exempt: the client is not loopback
    assert ratelimit.check_client("rest", "127.0.0.1", "198.51.100.2").allowed
    # The client cannot pose as another one by writing the header itself.
    assert not ratelimit.check_client("rest", "127.0.0.1", "10.9.9.9, 198.51.100.1").allowed
    assert ratelimit.check_client("rest", "127.0.0.1").allowed  # local, no header: exempt


def test_address_limit_off(client_limits) -> None:
    client_limits.setenv("CRM_RATE_LIMIT_IP", "off")
    client_limits.setenv("CRM_RATE_LIMIT_IP_EXEMPT", "none")
    assert all(ratelimit.check_client("rest", "203.0.113.9").allowed for _ in range(1000))
