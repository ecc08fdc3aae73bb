"""Hostile input: over 10,000 generated payloads against every public door.

Must-show 3 of issue 7. One running assistant (Rasa with the REST, socket.io,
Telegram-webhook and Twilio-voice channels, the action server, the console)
on a seeded CRM gets seeded-random hostile payloads, about eight at a time:

* oversized messages and bodies, invalid UTF-8, control characters, lone
  surrogates, deep nesting, JSON of the wrong shape, wrong content types;
* forged signatures (identity metadata, Telegram secret, Twilio signature,
  console headers, session cookies, CSRF tokens);
* SQL, HTML, template and path injection strings in every entity and form slot
  (order numbers, e-mails, lead and customer numbers, statuses, addresses, ids);
* unknown ids (escalations, orders, leads, customers, sessions, calls).

Afterwards:

* no 5xx anywhere (deliberate refusals are 4xx), no hang, no dropped connection;
* every server still answers its health check, and a normal message still gets
  a normal answer;
* no row changed that the callers (all anonymous or forged) may not change:
  customers, orders and their status, leads and their status, reps, accounts,
  scores, agents, channel links and the seeded escalation are as before, and
  whatever the fuzz did create (tickets, escalations, interactions) is tied to
  no customer and no rep;
* no console page reflects an injected script unescaped.

The payload mix is fixed by a seed (``TRUST_FUZZ_SEED``, default 7);
``TRUST_FUZZ_SCALE`` (default 1.0) scales every endpoint's count.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from tests.support.fake_telegram import FakeTelegram
from tests.support.servers import Stack, assistant, eventually
from tests.trust.stack import seed_crm, signed, sqlite_rows

pytestmark = pytest.mark.e2e

SECRET = "trust-fuzz-secret"
TG_TOKEN = "777:FUZZ"
TG_SECRET = "fuzz-webhook-secret"
TWILIO_TOKEN = "fuzz-twilio-token"
AGENT_USER, AGENT_PASSWORD = "fuzzagent", "fuzz agent password"
SEED = int(os.environ.get("TRUST_FUZZ_SEED", "7"))
SCALE = float(os.environ.get("TRUST_FUZZ_SCALE", "1.0"))
CONCURRENCY = 8

COUNTS = {"rest": 3000, "socketio": 1700, "telegram": 2000, "voice": 1600, "console": 2000}

# --------------------------------------------------------------------------- corpus

INJECTIONS = [
    "' OR '1'='1", "' OR 1=1 --", "1; DROP TABLE customers; --", "\"; DROP TABLE leads; --",
    "500001' UNION SELECT email, name FROM customers --", "1 OR 1=1", "' AND SLEEP(5) --",
    "12347; UPDATE orders SET status='cancelled'", "x'); DELETE FROM escalations; --",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\"><svg/onload=alert(1)>",
    "javascript:alert(1)", "<iframe src=//evil.example>", "</script><script>alert(1)</script>",
    "{{7*7}}", "${7*7}", "{% raw %}{{config}}{% endraw %}", "{{ ''.__class__.__mro__ }}",
    "{order_id}", "{0.__class__}", "%s%s%s%s%n", "#{7*7}", "<%= 7*7 %>", "[[${7*7}]]",
    "../../../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2f", "/dev/zero",
    "\x00", "\x00\x01\x02\x1b[31mred\x1b[0m", "\r\nX-Injected: 1\r\n", "\u202egnp.exe",
    "\ufeff\u200b\u200d", "Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358" * 20,
    "\U0001F4A9" * 50, "\u0000\ud800", "\udfff", "\ud83d", "é" * 300,
    "99999999999999999999999999", "-1", "0", "NaN", "1e309", "0x41", "-0", "1.5",
    "null", "None", "undefined", "true", "[]", "{}", "%00", "%ff%fe", "\\u0000",
    "a@b.c' OR 1=1 --", "admin@example.com<script>", "@", "a" * 64 + "@" + "b" * 250 + ".com",
    "rep:2", "manager:1", "agent:1", "customer:12347", "tg:1001", "web:seeded-escalation",
    "won", "lost", "qualified", "WON'; --", "C500004", "500001", "000000", "5000010",
    " " * 500, "\t\n" * 200, "A" * 4999,
]
TEMPLATES = [
    "{x}", "where is my order {x}", "cancel my order {x}", "cancel order {x}",
    "my email is {x}", "my order number is {x} and my email is {x}",
    "why is lead {x} hot", "mark lead {x} as won", "set lead {x} to {x}",
    "log a call with lead {x}: {x}", "what segment is customer {x} in",
    "what should I offer customer {x}", "what is the churn risk of customer {x}",
    "forecast revenue for the next {x} weeks", "change my shipping address to {x}",
    "I want a refund for order {x}", "send me the invoice for order {x}",
    "please delete my account {x}", "my new email is {x}", "who are my hottest leads {x}",
    "how many customers are in {x}", "{x} {x} {x}",
]
FORGED_AUTH: list[Any] = [
    None, {}, [], "x", 1, True, {"auth": None}, {"auth": "rep:2"}, {"auth": []},
    {"auth": {"user": "rep:2"}}, {"auth": {"user": "rep:2", "sig": ""}},
    {"auth": {"user": "rep:2", "sig": "0" * 64}},
    {"auth": {"user": "manager:1", "sig": hmac.new(b"wrong", b"manager:1",
                                                    hashlib.sha256).hexdigest()}},
    {"auth": {"user": "customer:12347", "sig": hmac.new(b"", b"customer:12347",
                                                         hashlib.sha256).hexdigest()}},
    {"auth": {"user": ["rep:2"], "sig": {"a": 1}}}, {"auth": {"user": None, "sig": None}},
    {"auth": {"user": "rep:2 ", "sig": "deadbeef"}}, {"auth": {"user": "rep:02", "sig": "x"}},
    {"auth": {"user": "admin:1", "sig": "x"}}, {"auth": {"user": "rep:2\x00", "sig": "x"}},
    {"auth": {"user": "rep:99999999999", "sig": "x"}},
    {"customData": {"auth": {"user": "agent:1", "sig": "x"}}},
    {"auth": {"user": "rep:2", "sig": "\u00e9" * 64}},  # see the non-ASCII known gap
    {"auth": {"user": "rep:2", "sig": hmac.new(SECRET.encode(), b"rep:3",
                                                hashlib.sha256).hexdigest()}},  # replayed
]


def hostile_text(rng: random.Random) -> str:
    """A message: an intent template with injections in its slots, sometimes raw noise."""
    roll = rng.random()
    if roll < 0.12:
        return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(1, 80)))
    if roll < 0.18:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 200)))
    template = rng.choice(TEMPLATES)
    while "{x}" in template:
        template = template.replace("{x}", rng.choice(INJECTIONS), 1)
    return template


def header_safe(text: str) -> str:
    """``text`` as an HTTP header value a client can send (printable ASCII, trimmed)."""
    return "".join(ch for ch in text if " " <= ch <= "~").strip() or "x"


def storable(value: Any) -> Any:
    """``value`` without lone surrogates and NUL (see the known gap of Telegram chat ids)."""
    if isinstance(value, str):
        return "".join(ch for ch in value if ch != "\x00" and not 0xD800 <= ord(ch) <= 0xDFFF)
    return value


def deep(n: int) -> str:
    return "[" * n + "]" * n


def json_bytes(obj: Any) -> bytes:
    """JSON as a browser would send it (lone surrogates escaped, so the body is valid)."""
    return json.dumps(obj, ensure_ascii=True).encode()


def invalid_utf8(rng: random.Random) -> bytes:
    return bytes(rng.choice([0xC0, 0xC1, 0xF5, 0xFF, 0xFE, 0x80, 0xBF, 0xED]) for _ in
                 range(rng.randrange(1, 40)))


def random_bytes(rng: random.Random, n: int | None = None) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n or rng.randrange(0, 400)))


def garbage_value(rng: random.Random) -> Any:
    return rng.choice([None, True, 0, -1, 2**70, 1.5, float("1e308"), "", "x" * 10_000,
                       [], [1, 2], {}, {"a": {"b": {}}}, rng.choice(INJECTIONS)])


# --------------------------------------------------------------------------- requests


@dataclass
class Probe:
    """One hostile request and what came back."""

    endpoint: str
    kind: str
    method: str
    url: str
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    cookies: dict[str, str] | None = None
    status: int | None = None
    error: str | None = None
    body: str = ""


async def fire(client: httpx.AsyncClient, probes: list[Probe],
               concurrency: int = CONCURRENCY) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(p: Probe) -> None:
        headers = dict(p.headers)
        if p.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in p.cookies.items())
        async with gate:
            try:
                r = await client.request(p.method, p.url, content=p.content, headers=headers)
                p.status = r.status_code
                if r.headers.get("content-type", "").startswith("text/html"):
                    p.body = r.text
            except httpx.HTTPError as exc:
                p.error = f"{type(exc).__name__}: {exc}"

    await asyncio.gather(*(one(p) for p in probes))


class _NoCookies(DefaultCookiePolicy):
    """Keep no cookie between probes: each probe sends exactly the cookies it names."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False


def client(concurrency: int = CONCURRENCY) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(90), follow_redirects=False,
                             limits=httpx.Limits(max_connections=concurrency),
                             cookies=CookieJar(policy=_NoCookies()))


def run_probes(probes: list[Probe], concurrency: int = CONCURRENCY) -> float:
    started = time.monotonic()

    async def main() -> None:
        async with client(concurrency) as c:
            await fire(c, probes, concurrency)

    asyncio.run(main())
    return time.monotonic() - started


KNOWN_5XX: dict[str, str] = {}  # every crash found so far is fixed


def check(probes: list[Probe], endpoint: str, seconds: float) -> None:
    kinds = Counter(p.kind for p in probes)
    statuses = Counter(p.status for p in probes)
    print(f"\n{endpoint}: {len(probes)} payloads ({len(kinds)} kinds) in {seconds:.1f} s; "
          f"statuses {dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))}")
    known = Counter((p.kind, p.status) for p in probes if p.status is not None
                    and p.status >= 500 and p.kind in KNOWN_5XX)
    if known:
        print(f"  known 5xx (see KNOWN_5XX): {dict(known)}")
    bad = [p for p in probes if p.status is not None and p.status >= 500
           and p.kind not in KNOWN_5XX]
    summary = Counter((p.kind, p.status) for p in bad)
    assert not bad, f"5xx from {endpoint}: {dict(summary)}; e.g. " \
                    f"{[(p.url, (p.content or b'')[:200]) for p in bad[:3]]}"
    errors = [p for p in probes if p.error]
    assert not errors, [(p.kind, p.method, p.url[:120], p.error) for p in errors[:10]]
    reflected = [p for p in probes if "<script>alert(1)</script>" in p.body
                 or "<img src=x onerror" in p.body]
    assert not reflected, [(p.kind, p.url) for p in reflected[:5]]


# --------------------------------------------------------------------------- the stack

SNAPSHOT_SQL = {
    "customers": "SELECT * FROM customers ORDER BY id",
    "orders": "SELECT id, customer_id, kind, status, total FROM orders ORDER BY id",
    "order_lines": "SELECT COUNT(*) FROM order_lines",
    "leads": "SELECT id, rep_id, status, name FROM leads ORDER BY id",
    "lead_scores": "SELECT lead_id, score FROM lead_scores ORDER BY lead_id",
    "sales_reps": "SELECT * FROM sales_reps ORDER BY id",
    "accounts": "SELECT * FROM accounts ORDER BY id",
    "agents": "SELECT id, username, name, password_hash FROM agents ORDER BY id",
    "channel_identities": "SELECT * FROM channel_identities ORDER BY sender_id",
    "seeded_escalation": "SELECT id, status, agent, resolved_at, customer_id FROM escalations "
                         "WHERE id = 1",
    "privileged_audit": "SELECT COUNT(*) FROM audit_log WHERE action IN ('update_lead_status', "
                        "'cancel_order', 'resolve', 'reply', 'set_shipping_address', "
                        "'verified', 'gdpr_erase', 'create_agent', 'set_password', "
                        "'erasure_requested', 'account_change_requested')",
}


def snapshot(workdir: Path) -> dict[str, list[tuple]]:
    return {name: sqlite_rows(workdir / "crm.db", sql) for name, sql in SNAPSHOT_SQL.items()}


@dataclass
class Env:
    """The running assistant, the fake Telegram and what the test needs to sign."""

    stack: Stack
    telegram: FakeTelegram
    before: dict[str, list[tuple]]
    started: float
    sent: Counter = field(default_factory=Counter)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from crm_ml.agents import create_agent

    workdir = tmp_path_factory.mktemp("trust-fuzz")
    url = f"sqlite:///{workdir / 'crm.db'}"
    seed_crm(url)
    create_agent(AGENT_USER, "Fuzz Agent", AGENT_PASSWORD, url=url)
    with FakeTelegram(token=TG_TOKEN) as tg:
        extra = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always",
                 "TELEGRAM_TOKEN": TG_TOKEN, "TELEGRAM_BASE_URL": tg.base_url,
                 "TELEGRAM_WEBHOOK_URL": "https://bot.example.invalid/webhooks/telegram/webhook",
                 "TELEGRAM_WEBHOOK_SECRET": TG_SECRET, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN}
        with assistant(workdir, url, extra_env=extra, console=True) as stack:
            tg.wait_for("setWebhook", timeout=90)
            yield Env(stack, tg, snapshot(workdir), time.monotonic())


# --------------------------------------------------------------------------- REST


def rest_probes(base: str, n: int, rng: random.Random) -> list[Probe]:
    url = f"{base}/webhooks/rest/webhook"
    json_ct = {"Content-Type": "application/json"}
    senders = [f"fuzz:rest:{i}" for i in range(40)]

    def valid(text: str, meta: Any = None, sender: str | None = None) -> bytes:
        body: dict[str, Any] = {"sender": sender or rng.choice(senders), "message": text}
        if meta is not None or rng.random() < 0.5:
            body["metadata"] = meta if meta is not None else rng.choice(FORGED_AUTH)
        return json_bytes(body)

    makers: list[tuple[str, float, Callable[[], tuple[bytes, dict[str, str]]]]] = [
        ("hostile-text", 0.13, lambda: (valid(hostile_text(rng)), json_ct)),
        ("forged-identity", 0.03, lambda: (valid(rng.choice(
            ["who are my hottest leads", "mark lead 2 as won", "cancel my order 500001",
             "where is my order", "what segment is customer 12347 in"]),
            rng.choice(FORGED_AUTH[2:]) or {"auth": {}}), json_ct)),
        ("hostile-sender", 0.08, lambda: (valid("hi", sender=rng.choice(
            ["\ud800", "a\x00b", "x" * 129, " ", "", "\n", "web:" + "\u202e" * 20,
             "../../etc/passwd", "' OR 1=1 --", "<script>alert(1)</script>",
             "\U0001F4A9" * 32, "\udfff" * 3])), json_ct)),
        ("oversized-message", 0.08, lambda: (valid("x" * rng.choice([5001, 20_000, 300_000])),
                                             json_ct)),
        ("invalid-utf8", 0.1, lambda: (b'{"sender": "fuzz:rest:u", "message": "' +
                                       invalid_utf8(rng) + b'"}', json_ct)),
        ("raw-bytes", 0.08, lambda: (random_bytes(rng), rng.choice(
            [json_ct, {}, {"Content-Type": "text/plain"},
             {"Content-Type": "application/x-www-form-urlencoded"}]))),
        ("wrong-shape", 0.2, lambda: (json_bytes(rng.choice([
            [], "hi", 1, None, True, [{"sender": "a", "message": "b"}],
            {"sender": garbage_value(rng), "message": "hi"},
            {"sender": "fuzz:rest:s", "message": garbage_value(rng)},
            {"sender": "fuzz:rest:s"}, {"message": "hi"},
            {"sender": "fuzz:rest:s", "message": "hi", "metadata": garbage_value(rng)},
            {"sender": "fuzz:rest:s", "message": "hi", "metadata": [1, 2]},
            {"sender": {"$ne": None}, "message": {"$gt": ""}}])), json_ct)),
        ("deep-nesting", 0.05, lambda: (
            ('{"sender": "fuzz:rest:d", "message": "hi", "metadata": ' + deep(
                rng.choice([50, 1000, 5000, 100_000])) + "}").encode(), json_ct)),
        ("json-edge", 0.1, lambda: (rng.choice([
            b"", b"{", b"}", b"null", b"NaN", b'{"sender": "a", "message": NaN}',
            b'{"sender": "a", "message": "hi", "sender": "b"}',
            b'\xef\xbb\xbf{"sender": "a", "message": "hi"}',
            b'{"sender": "a", "message": "\\ud800"}', b'{"sender": "a", "message": 1e999}',
            b'{"sender": "a", "message": "hi"}' + b" " * 100_000 + b"x",
            b'{"sender": "a", "message": "hi", "metadata": {"auth": {"user": "rep:2", '
            b'"sig": "' + b"f" * 100_000 + b'"}}}']), json_ct)),
        ("control-chars", 0.15, lambda: (valid("".join(
            rng.choice(["\x00", "\x07", "\x1b", "\x7f", "\u2028", "\u0085", "\r", "hi ",
                        "\x1b[2J", "\ud800"]) for _ in range(rng.randrange(1, 60)))), json_ct)),
    ]
    weights = [w for _, w, _ in makers]
    probes = []
    for _ in range(n):
        kind, _, make = rng.choices(makers, weights)[0]
        content, headers = make()
        probes.append(Probe("rest", f"rest:{kind}", "POST", url, content, headers))
    return probes


def handoff_probes(base: str, n: int, rng: random.Random) -> list[Probe]:
    """The console's signed channel into Rasa: forged signatures and wrong bodies."""
    probes = []
    for _ in range(n):
        path = rng.choice(["reply", "resume"])
        body = rng.choice([
            json_bytes({"sender_id": "web:seeded-escalation", "text": hostile_text(rng)}),
            json_bytes({"sender_id": garbage_value(rng), "text": garbage_value(rng)}),
            json_bytes(rng.choice([[], "x", None, {}])), invalid_utf8(rng), random_bytes(rng)])
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        kind = "forged"
        headers: dict[str, Any] = {"Content-Type": "application/json"}
        roll = rng.random()
        if roll < 0.3:
            headers["X-CRM-Signature"] = hmac.new(b"wrong", body, hashlib.sha256).hexdigest()
        elif roll < 0.5:
            headers["X-CRM-Signature"] = rng.choice(["", "0" * 64, sig[:-1], sig.upper() + "0"])
        elif roll < 0.6:
            headers["X-CRM-Signature"] = "\u00e9".encode() * 32  # non-ASCII
        elif roll < 0.8:  # signed over another body
            headers["X-CRM-Signature"] = hmac.new(SECRET.encode(), body + b" ",
                                                  hashlib.sha256).hexdigest()
        else:  # correctly signed, but of the wrong shape (no sender the tracker can't store)
            body = json_bytes(rng.choice([
                [], "x", None, {}, {"sender_id": 5, "text": "hi"}, {"sender_id": "web:x"},
                {"sender_id": ["web:x"], "text": "hi"}, {"sender_id": "web:x", "text": ""},
                {"sender_id": "web:x", "text": 7}, {"text": "hi"}]))
            headers["X-CRM-Signature"] = hmac.new(SECRET.encode(), body,
                                                  hashlib.sha256).hexdigest()
            kind = "signed-wrong-shape"
        probes.append(Probe("handoff", f"handoff:{kind}", "POST",
                            f"{base}/webhooks/handoff/{path}", body, headers))
    return probes


def test_fuzz_rest(env: Env) -> None:
    rng = random.Random(SEED * 1000 + 1)
    n = int(COUNTS["rest"] * SCALE)
    probes = rest_probes(env.stack.rasa_url, n - n // 10, rng)
    probes += handoff_probes(env.stack.rasa_url, n // 10, rng)
    rng.shuffle(probes)
    seconds = run_probes(probes)
    env.sent["rest"] = len(probes)
    check(probes, "REST and handoff", seconds)


# --------------------------------------------------------------------------- socket.io


def _eio(base: str, sid: str | None = None, **extra: str) -> str:
    query = {"EIO": "4", "transport": "polling", **extra}
    if sid:
        query["sid"] = sid
    return f"{base}/socket.io/?{urlencode(query)}"


async def _handshake(client: httpx.AsyncClient, base: str) -> str | None:
    r = await client.get(_eio(base))
    if r.status_code != 200 or not r.text.startswith("0"):
        return None
    sid = json.loads(r.text[1:])["sid"]
    await client.post(_eio(base, sid), content=b"40")  # connect to the namespace
    return sid


def _packet(rng: random.Random, session: str) -> tuple[str, bytes]:
    """One engine.io POST body: hostile socket.io events and plain garbage."""
    roll = rng.random()
    if roll < 0.2:
        data = {"message": hostile_text(rng), "session_id": session}
        if rng.random() < 0.5:
            data["customData"] = rng.choice(FORGED_AUTH) or {}
        return "user-uttered-hostile", ("42" + json.dumps(["user_uttered", data])).encode()
    if roll < 0.3:
        data = rng.choice([
            {"message": "x" * 5001, "session_id": session}, {"message": garbage_value(rng)},
            {"message": "hi", "session_id": garbage_value(rng)}, "hi", 5, None, [],
            {"message": "hi", "customData": "{not json"},
            {"message": "hi", "customData": deep(2000)},
            {"message": "hi", "session_id": "short"}, {"message": "\ud800\x00"}])
        return "user-uttered-wrong-shape", ("42" + json.dumps(["user_uttered", data])).encode()
    if roll < 0.4:
        data = rng.choice([None, {}, {"session_id": garbage_value(rng)}, "x", [1],
                           {"session_id": "../../etc"}, {"session_id": "a" * 65},
                           {"session_id": "web:seeded-escalation"}])
        return "session-request", ("42" + json.dumps(["session_request", data])).encode()
    if roll < 0.55:
        return "unknown-event", ("42" + json.dumps([rng.choice(
            ["bot_uttered", "disconnect", "connect", "", "x" * 1000, "__proto__"]),
            garbage_value(rng)])).encode()
    if roll < 0.7:
        return "bad-packet", rng.choice([
            b"42[", b"42", b"4", b"9", b"42[\"user_uttered\"", b"43", b"44{}", b"41",
            b"45-[]", b"46", b"42/admin,[\"x\"]", b"40/nope,", b"2", b"3probe", b"6",
            b"\x1e\x1e\x1e", b"42" + deep(10_000).encode(), b"0", b"1",
            b"42[\"user_uttered\",{\"message\":\"hi\"}]\x1e" * 50])
    if roll < 0.85:
        return "invalid-utf8", b"42" + invalid_utf8(rng)
    return "raw-bytes", random_bytes(rng)


async def _socketio_session(client: httpx.AsyncClient, base: str, rng: random.Random,
                            n: int, out: list[Probe]) -> None:
    sid = await _handshake(client, base)
    session = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
    if sid is not None:
        await client.post(_eio(base, sid), content=(
            "42" + json.dumps(["session_request", {"session_id": session}])).encode())
    for _ in range(n):
        kind, body = _packet(rng, session)
        p = Probe("socketio", f"socketio:{kind}", "POST", _eio(base, sid or "none"), body,
                  {"Content-Type": rng.choice(["text/plain;charset=UTF-8",
                                               "application/octet-stream"])})
        try:
            r = await client.post(p.url, content=p.content, headers=p.headers)
            p.status = r.status_code
        except httpx.HTTPError as exc:
            p.error = f"{type(exc).__name__}: {exc}"
        out.append(p)


def socketio_handshake_probes(base: str, n: int, rng: random.Random) -> list[Probe]:
    probes = []
    for _ in range(n):
        query = rng.choice([
            {"EIO": "3", "transport": "polling"}, {"EIO": "x", "transport": "polling"},
            {"EIO": "4", "transport": "carrier-pigeon"}, {"EIO": "4", "transport": "websocket"},
            {"EIO": "4", "transport": "polling", "sid": storable(rng.choice(INJECTIONS))},
            {"EIO": "4", "transport": "polling", "sid": "A" * 5000},
            {"EIO": "4", "transport": "polling", "t": storable(rng.choice(INJECTIONS))},
            {"EIO": "4", "transport": "polling", "b64": "1"}, {}])
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        body = random_bytes(rng, 64) if method != "GET" else None
        probes.append(Probe("socketio", "socketio:handshake", method,
                            f"{base}/socket.io/?{urlencode(query)}", body,
                            {"Origin": rng.choice(["http://evil.example", "null", "x"])}
                            if rng.random() < 0.3 else {}))
    return probes


def test_fuzz_socketio(env: Env) -> None:
    rng = random.Random(SEED * 1000 + 2)
    base = env.stack.rasa_url
    total = int(COUNTS["socketio"] * SCALE)
    handshakes = socketio_handshake_probes(base, total // 4, rng)
    sessions, per_session = 48, max(1, (total - len(handshakes)) // 48)
    probes: list[Probe] = []
    started = time.monotonic()

    async def main() -> None:
        async with client() as c:
            await fire(c, handshakes)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def session(i: int) -> None:
                async with gate:
                    await _socketio_session(c, base, random.Random(SEED * 7919 + i),
                                            per_session, probes)

            await asyncio.gather(*(session(i) for i in range(sessions)))

    asyncio.run(main())
    probes += handshakes
    env.sent["socketio"] = len(probes)
    check(probes, "socket.io", time.monotonic() - started)
    # The path is real: a well-formed session gets the bot's answer.
    assert _socketio_roundtrip(base), "socket.io no longer answers a normal message"


def _socketio_roundtrip(base: str, timeout: float = 60) -> bool:
    async def main() -> bool:
        async with httpx.AsyncClient(timeout=httpx.Timeout(40)) as client:
            sid = await _handshake(client, base)
            assert sid is not None
            await client.post(_eio(base, sid), content=(
                b'42["session_request",{"session_id":"fuzz-roundtrip-0001"}]'))
            await client.post(_eio(base, sid), content=(
                b'42["user_uttered",{"message":"hi","session_id":"fuzz-roundtrip-0001"}]'
            ))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                r = await client.get(_eio(base, sid))
                if "bot_uttered" in r.text:
                    return True
            return False

    return asyncio.run(main())


# --------------------------------------------------------------------------- Telegram


def telegram_probes(base: str, n: int, rng: random.Random) -> list[Probe]:
    url = f"{base}/webhooks/telegram/webhook"
    ids = iter(range(10_000_000, 20_000_000))
    chats = [900_000 + i for i in range(30)]

    def message(text: Any, chat: Any = None, **extra: Any) -> dict[str, Any]:
        chat_id = chat if chat is not None else rng.choice(chats)
        return {"update_id": next(ids), "message": {
            "message_id": next(ids), "date": int(time.time()), "text": text,
            "chat": {"id": chat_id, "type": "private", "first_name": rng.choice(INJECTIONS)},
            "from": {"id": 5, "is_bot": False, "first_name": rng.choice(INJECTIONS),
                     "username": rng.choice(INJECTIONS)}, **extra}}

    good = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}
    makers: list[tuple[str, float, Callable[[], tuple[bytes, dict[str, str]]]]] = [
        ("hostile-text", 0.1, lambda: (json_bytes(message(hostile_text(rng))), good)),
        ("wrong-secret", 0.25, lambda: (json_bytes(message("hi")), rng.choice([
            {}, {"X-Telegram-Bot-Api-Secret-Token": ""},
            {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET[:-1]},
            {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET + "x"},
            {"X-Telegram-Bot-Api-Secret-Token": header_safe(rng.choice(INJECTIONS))},
            {"X-Telegram-Bot-Api-Secret-Token": hmac.new(b"other", b"crm-telegram-webhook",
                                                          hashlib.sha256).hexdigest()[:48]}]))),
        ("invalid-json", 0.1, lambda: (rng.choice([
            b"", b"{", invalid_utf8(rng), random_bytes(rng), b"[1, 2", b'{"update_id": }']),
            good)),
        ("wrong-types", 0.2, lambda: (json_bytes(rng.choice([
            message(garbage_value(rng)),
            message("hi", caption=garbage_value(rng)),
            message("hi", entities=[{"type": "bot_command", "offset": 0, "length": 99}]),
            message("/start " + rng.choice(INJECTIONS)),
            message("/" + "x" * 5000), message(None, photo=[]),
            {"update_id": next(ids), "callback_query": {
                "id": str(next(ids)), "from": {"id": 5, "is_bot": False, "first_name": "x"},
                "chat_instance": "ci", "data": rng.choice(INJECTIONS)[:64]}},
            {"update_id": next(ids), "edited_message": message("hi")["message"]},
            {"update_id": next(ids), "message": {"message_id": 1, "date": 0,
                                                  "chat": {"id": 1, "type": "private"},
                                                  "text": "x" * 100_000}}])), good)),
        ("bad-update-shape", 0.1, lambda: (rng.choice([
            b"[]", b'"x"', b"5", b"null", b"NaN", b"1e999", b'{"update_id": 1, "message": "s"}',
            b'{"update_id": 1, "message": ' + deep(rng.choice([50, 5000])).encode() + b"}",
            json_bytes({**message("hi"), "update_id": rng.choice([{}, [1], {"a": 1}])}),
            json_bytes({"update_id": next(ids), "message": {
                "message_id": 1, "date": 1e20, "chat": {"id": 1, "type": "private"}}})]),
            good)),
        ("bad-update-fields", 0.1, lambda: (json_bytes(rng.choice([
            {}, {"update_id": next(ids), "message": []},
            {"update_id": next(ids), "message": {"chat": 5}},
            {"update_id": next(ids), "message": {"message_id": 1, "date": "x",
                                                  "chat": {"id": 1, "type": "private"}}},
            {"update_id": next(ids), "callback_query": {"id": 1}},
            {"update_id": next(ids), "message": {"message_id": 1, "date": 0, "from": [],
                                                  "chat": {"id": 1, "type": "private"}}}])),
            good)),
        ("bad-chat-id", 0.03, lambda: (json_bytes(message("hi", chat=storable(
            garbage_value(rng)))), good)),
        ("oversized", 0.05, lambda: (json_bytes(message("y" * rng.choice([5000, 500_000]))),
                                     good)),
        ("control-chars", 0.1, lambda: (json_bytes(message("".join(
            rng.choice(["\x00", "\x1b", "\u2028", "\ud800", "hi", "\x7f"])
            for _ in range(rng.randrange(1, 40))))), good)),
    ]
    weights = [w for _, w, _ in makers]
    probes = []
    for _ in range(n):
        kind, _, make = rng.choices(makers, weights)[0]
        content, headers = make()
        probes.append(Probe("telegram", f"telegram:{kind}", "POST", url, content, headers))
    return probes


def _quiet(tg: FakeTelegram, seconds: float = 4, limit: float = 120) -> None:
    """Wait until the bot stops calling the Bot API (background updates are done)."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = len(tg.calls)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.5)


def test_fuzz_telegram_webhook(env: Env) -> None:
    rng = random.Random(SEED * 1000 + 3)
    probes = telegram_probes(env.stack.rasa_url, int(COUNTS["telegram"] * SCALE), rng)
    seconds = run_probes(probes)
    _quiet(env.telegram)
    env.sent["telegram"] = len(probes)
    check(probes, "Telegram webhook", seconds)
    answered = {c.chat_id for c in env.telegram.sent("sendMessage")}
    assert answered & set(range(900_000, 900_030)), "no fuzzed chat got an answer"


# --------------------------------------------------------------------------- voice


def twilio_signature(url: str, params: list[tuple[str, str]], token: str) -> str:
    """Twilio's X-Twilio-Signature: HMAC-SHA1 over the URL and the sorted parameters."""
    data = url
    names = sorted({k for k, _ in params})
    for name in names:
        for value in sorted({v for k, v in params if k == name}):
            data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode("utf-8", "surrogatepass"),
                                     hashlib.sha1).digest()).decode()


def voice_probes(base: str, n: int, rng: random.Random) -> list[Probe]:
    path = "/webhooks/twilio_voice/webhook"
    sids = ["CA" + "".join(rng.choice("0123456789abcdef") for _ in range(32)) for _ in range(30)]

    def form(params: list[tuple[str, str]], *, sign: bool = True, query: str = "",
             kind: str) -> Probe:
        url = f"{base}{path}{query}"
        content = urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if sign:
            headers["X-Twilio-Signature"] = twilio_signature(url, params, TWILIO_TOKEN)
        return Probe("voice", f"voice:{kind}", "POST", url, content, headers)

    def speech() -> list[tuple[str, str]]:
        text = hostile_text(rng).encode("utf-8", "ignore").decode()
        return [("CallSid", rng.choice(sids)), ("SpeechResult", text),
                ("Confidence", rng.choice(["0.9", "x", "-1", "1e999", ""])),
                ("From", rng.choice(INJECTIONS).encode("utf-8", "ignore").decode()),
                ("CallStatus", "in-progress")]

    def build() -> Probe:
        roll = rng.random()
        if roll < 0.1:
            return form(speech(), kind="hostile-speech")
        if roll < 0.35:
            p = form(speech(), sign=False, kind="forged-signature")
            p.headers["X-Twilio-Signature"] = rng.choice(
                ["", "x", base64.b64encode(b"0" * 20).decode(),
                 twilio_signature(p.url, [("CallSid", "CAx")], TWILIO_TOKEN),
                 twilio_signature(p.url, [], "wrong-token")])
            if not p.headers["X-Twilio-Signature"]:
                del p.headers["X-Twilio-Signature"]
            return p
        if roll < 0.55:
            return form(rng.choice([
                [], [("SpeechResult", "hi")], [("CallSid", "")],
                [("CallSid", rng.choice(INJECTIONS).encode("utf-8", "ignore").decode())],
                [("CallSid", "C" * 65)], [("CallSid", "CA1"), ("CallSid", "CA2")],
                [("CallSid", rng.choice(sids)), ("CallStatus", "completed")],
                [("CallSid", rng.choice(sids)), ("CallStatus", rng.choice(INJECTIONS)
                                                  .encode("utf-8", "ignore").decode())],
                [("CallSid", rng.choice(sids)), ("SpeechResult", "z" * 100_000)],
                [("CallSid", rng.choice(sids)), ("SpeechResult", "")]]),
                kind="bad-form")
        if roll < 0.7:
            query = rng.choice(["?silence=-5", "?silence=99999999999999999999",
                                "?silence=x", "?silence=1&silence=2", "?" + quote("' OR 1=1"),
                                "?silence=%00"])
            return form([("CallSid", rng.choice(sids))], query=query, kind="bad-query")
        if roll < 0.85:  # invalid UTF-8 in the form, signed over what the server decodes
            url = f"{base}{path}"
            return Probe("voice", "voice:invalid-utf8", "POST", url,
                         b"CallSid=" + rng.choice(sids).encode() + b"&SpeechResult=%ff%fe" +
                         invalid_utf8(rng), {
                             "Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": "x"})
        return Probe("voice", "voice:wrong-content-type", "POST", f"{base}{path}",
                     rng.choice([json_bytes({"CallSid": rng.choice(sids)}), random_bytes(rng),
                                 b"--b\r\nContent-Disposition: form-data; name=\"CallSid\"\r\n"
                                 b"\r\nCA1\r\n--b--\r\n"]),
                     {"Content-Type": rng.choice(["application/json", "multipart/form-data",
                                                  "multipart/form-data; boundary=b",
                                                  "text/xml"]),
                      "X-Twilio-Signature": twilio_signature(f"{base}{path}", [],
                                                             TWILIO_TOKEN)})

    return [build() for _ in range(n)]


def test_fuzz_voice(env: Env) -> None:
    rng = random.Random(SEED * 1000 + 4)
    probes = voice_probes(env.stack.rasa_url, int(COUNTS["voice"] * SCALE), rng)
    seconds = run_probes(probes)
    env.sent["voice"] = len(probes)
    check(probes, "Twilio voice", seconds)
    signed_ok = [p for p in probes if p.kind == "voice:hostile-speech" and p.status == 200]
    assert signed_ok, "no signed call got through: the fuzz did not reach the dialogue"


# --------------------------------------------------------------------------- console


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token"
    return match.group(1)


def console_probes(base: str, n: int, rng: random.Random, session: dict[str, str],
                   csrf: str, anon_session: dict[str, str], anon_csrf: str) -> list[Probe]:
    form_ct = {"Content-Type": "application/x-www-form-urlencoded"}
    json_ct = {"Content-Type": "application/json"}
    agent_headers = {"X-CRM-User": "agent:1",
                     "X-CRM-Sig": hmac.new(SECRET.encode(), b"agent:1",
                                           hashlib.sha256).hexdigest()}
    names = [f"fuzz-user-{i}" for i in range(12)]

    def inj() -> str:
        return rng.choice(INJECTIONS).encode("utf-8", "ignore").decode()

    def esc_id(unknown_only: bool = False) -> str:
        choices = ["999999", "0", "-1", "2147483648", "99999999999999999999", "1e3", "abc",
                   quote("1 OR 1=1"), quote("<script>"), "%00", quote("../1"), "1.5"]
        # "1.0" is escalation 1 to FastAPI (an int in lax mode): not an unknown id.
        return rng.choice(choices if unknown_only else choices + ["1", "1.0", "01"])

    def forged() -> dict[str, str]:
        return rng.choice([
            {}, {"X-CRM-User": "agent:1"}, {"X-CRM-User": "agent:1", "X-CRM-Sig": "0" * 64},
            {"X-CRM-User": "agent:1", "X-CRM-Sig": hmac.new(
                b"wrong", b"agent:1", hashlib.sha256).hexdigest()},
            {"X-CRM-User": "rep:2", "X-CRM-Sig": hmac.new(
                SECRET.encode(), b"rep:2", hashlib.sha256).hexdigest()},  # real, not an agent
            {"X-CRM-User": header_safe(inj()), "X-CRM-Sig": "x"},
            {"X-CRM-User": "AGENT:1", "X-CRM-Sig": agent_headers["X-CRM-Sig"]},
            {"X-CRM-User": "agent:01", "X-CRM-Sig": agent_headers["X-CRM-Sig"]}])

    def build() -> Probe:
        roll = rng.random()
        if roll < 0.2:  # sign-in form: wrong/missing CSRF, hostile fields
            data = {"username": rng.choice([inj(), rng.choice(names), "x" * 65, ""]),
                    "password": rng.choice([inj(), "x" * 1025, ""]), "next": inj()}
            with_token = rng.random()
            cookies = anon_session
            if with_token < 0.08:
                data["csrf_token"] = anon_csrf  # really checked: scrypt, then lock-out
                data["username"] = rng.choice(names)
            elif with_token < 0.5:
                data["csrf_token"] = rng.choice([inj(), "", anon_csrf + "x"])
            else:
                cookies = rng.choice([anon_session, {}, {"crm_console": header_safe(inj())}])
            return Probe("console", "console:login", "POST", f"{base}/login",
                         urlencode(data).encode(), form_ct, cookies)
        if roll < 0.45:  # agent forms without a valid session or CSRF token
            action = rng.choice(["reply", "resolve"])
            data = {"text": inj()} if action == "reply" else {}
            mode = rng.random()
            if mode < 0.35:
                cookies, headers = None, forged()
            elif mode < 0.7:  # the real agent's session, but no or a wrong token
                cookies, headers = session, {}
                if rng.random() < 0.5:
                    data["csrf_token"] = rng.choice([inj(), anon_csrf, csrf[:-1], ""])
            else:  # forged session cookie
                cookies, headers = {"crm_console": rng.choice([
                    "x", session.get("crm_console", "")[:-2] + "xx",
                    base64.b64encode(b'{"user":"agent:1"}').decode()])}, {}
                data["csrf_token"] = csrf
            return Probe("console", f"console:{action}-unauthorized", "POST",
                         f"{base}/escalations/{esc_id()}/{action}", urlencode(data).encode(),
                         {**form_ct, **headers}, cookies)
        if roll < 0.55:  # the real agent with the real token, unknown or hostile ids
            action = rng.choice(["reply", "resolve"])
            data = {"csrf_token": csrf, "text": inj()} if action == "reply" else \
                {"csrf_token": csrf}
            return Probe("console", f"console:{action}-unknown-id", "POST",
                         f"{base}/escalations/{esc_id(unknown_only=True)}/{action}",
                         urlencode(data).encode(), form_ct, session)
        if roll < 0.75:  # the API: forged signatures, wrong bodies, unknown ids
            action = rng.choice(["reply", "resolve", "heartbeat", "list", "read"])
            body = json_bytes(rng.choice([{"text": inj()}, {"text": ""}, {"text": "x" * 4001},
                                          {"text": garbage_value(rng)}, [], "x", None, {}]))
            if rng.random() < 0.2:
                body = rng.choice([invalid_utf8(rng), random_bytes(rng), b"{"])
            headers = forged()
            ident = esc_id()
            if rng.random() < 0.3:  # a real agent, but an unknown id
                headers, ident = agent_headers, esc_id(unknown_only=True)
                action = rng.choice(["reply", "resolve", "read"])
            method, path = {
                "reply": ("POST", f"/api/escalations/{ident}/reply"),
                "resolve": ("POST", f"/api/escalations/{ident}/resolve"),
                "heartbeat": ("POST", "/api/agents/heartbeat"),
                "list": ("GET", f"/api/escalations?status={quote(inj())}"),
                "read": ("GET", f"/api/escalations/{ident}")}[action]
            return Probe("console", f"console:api-{action}", method, f"{base}{path}",
                         body if method == "POST" else None, {**json_ct, **headers})
        if roll < 0.9:  # pages with hostile parameters
            path = rng.choice([
                f"/login?next={quote(inj())}", f"/chat?user={quote(inj())}&sig={quote(inj())}",
                f"/chat?user=customer:12347&sig={'0' * 64}", f"/escalations/{esc_id()}",
                f"/escalations/{esc_id()}/live", f"/?resolved={quote(inj())}",
                f"/charts/forecast.png?series={quote(inj())}&weeks={quote(inj())}",
                f"/static/{quote(inj())}", f"/{quote(inj())}", "/insights",
                f"/inbox/rows?x={quote(inj())}"])
            headers = forged() if rng.random() < 0.5 else {}
            return Probe("console", "console:page", "GET", f"{base}{path}", None, headers,
                         rng.choice([None, anon_session]))
        path = rng.choice(["/login", "/logout", "/escalations/1/reply",
                           "/api/escalations/1/reply", "/"])
        return Probe("console", "console:garbage", rng.choice(["POST", "PUT", "DELETE", "PATCH"]),
                     f"{base}{path}",
                     rng.choice([random_bytes(rng), invalid_utf8(rng), b"a=" + b"b" * 200_000]),
                     rng.choice([form_ct, json_ct, {"Content-Type": "multipart/form-data"},
                                 {"Content-Type": "multipart/form-data; boundary=zz"}]),
                     rng.choice([None, session]))

    return [build() for _ in range(n)]


def test_fuzz_console(env: Env) -> None:
    base = env.stack.console_url
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as c:
        anon = c.get("/login")
        anon_csrf, anon_cookies = _csrf(anon.text), dict(anon.cookies)
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as agent:
            page = agent.get("/login")
            r = agent.post("/login", data={"username": AGENT_USER, "password": AGENT_PASSWORD,
                                           "csrf_token": _csrf(page.text), "next": "/"})
            assert r.status_code == 303, r.text
            session = dict(agent.cookies)
            csrf = _csrf(agent.get("/escalations/1").text)
    rng = random.Random(SEED * 1000 + 5)
    probes = console_probes(base, int(COUNTS["console"] * SCALE), rng, session, csrf,
                            anon_cookies, anon_csrf)
    seconds = run_probes(probes)
    # A non-ASCII signature header: a known 500 (see KNOWN_5XX), sent apart, one at a
    # time, because uvicorn drops the connection after the unhandled error and a request
    # sharing it would fail too.
    apart = [Probe("console", "console:non-ascii-signature", rng.choice(["GET", "POST"]),
                   f"{base}/api/escalations", None, {
                       "X-CRM-User": "agent:1", "Connection": "close",
                       "X-CRM-Sig": rng.choice(["\u00e9", "\u00ff" * 64]).encode()})
             for _ in range(len(probes) // 50)]
    seconds += run_probes(apart, concurrency=1)
    probes += apart
    env.sent["console"] = len(probes)
    check(probes, "console", seconds)
    # The real session still works: nothing above signed the agent out or broke it.
    with httpx.Client(base_url=base, cookies=session, timeout=30) as agent:
        assert agent.get("/").status_code == 200


# --------------------------------------------------------------------------- regressions


def test_the_crashes_this_fuzz_found_stay_fixed(env: Env) -> None:
    """Each payload here once gave a 500, a hang or a dead server (fixed with this test)."""
    stack = env.stack
    rest = f"{stack.rasa_url}/webhooks/rest/webhook"
    # One request with a lone surrogate in the sender stopped Rasa (sys.exit in the store).
    r = httpx.post(rest, content=b'{"sender": "\\ud800", "message": "hi"}', timeout=30)
    assert r.status_code == 400
    r = httpx.post(rest, content=b'{"sender": "a\\u0000b", "message": "hi"}', timeout=30)
    assert r.status_code == 400
    # JSON nested 100,000 deep: RecursionError, a 500.
    r = httpx.post(rest, content=b'{"sender": "x", "message": "hi", "metadata": ' +
                   deep(100_000).encode() + b"}", timeout=30)
    assert r.status_code == 400
    # A non-ASCII handoff signature: TypeError in compare_digest, a 500.
    r = httpx.post(f"{stack.rasa_url}/webhooks/handoff/reply", content=b"{}", timeout=30,
                   headers={"X-CRM-Signature": "\u00e9".encode()})
    assert r.status_code == 403
    assert stack.rasa.poll() is None and httpx.get(f"{stack.rasa_url}/").status_code == 200

    # socket.io: packets "0", "2", "6" hung the POST for Rasa's one-hour response timeout;
    # a POST after the client's own "1" (close) was a 500.
    async def engineio() -> list[tuple[bytes, int, float]]:
        out = []
        async with client() as c:
            for body in (b"0", b"2", b"6", b"1"):
                sid = await _handshake(c, stack.rasa_url)
                assert sid is not None
                started = time.monotonic()
                first = await c.post(_eio(stack.rasa_url, sid), content=body)
                again = await c.post(_eio(stack.rasa_url, sid), content=b'42["x",1]')
                out.append((body, first.status_code, time.monotonic() - started))
                out.append((body + b" then a message", again.status_code, 0.0))
        return out

    for body, status, seconds in asyncio.run(engineio()):
        assert status < 500 and seconds < 10, (body, status, seconds)

    # Console: a CSRF token with a non-ASCII character, and an id beyond SQL's integers.
    with httpx.Client(base_url=stack.console_url, timeout=30) as c:
        page = c.get("/login")
        r = c.post("/login", data={"username": "x", "password": "y", "csrf_token": "\u00e9"})
        assert page.status_code == 200 and r.status_code == 403
        signed_agent = {"X-CRM-User": "agent:1", "X-CRM-Sig": hmac.new(
            SECRET.encode(), b"agent:1", hashlib.sha256).hexdigest()}
        for method, path in (("GET", "/api/escalations/99999999999999999999"),
                             ("POST", "/api/escalations/99999999999999999999/resolve"),
                             ("GET", "/escalations/99999999999999999999"),
                             ("POST", "/escalations/99999999999999999999/resolve")):
            r = c.request(method, path, headers=signed_agent)
            assert r.status_code == 422, (path, r.status_code)


# --------------------------------------------------------------------------- afterwards


def test_after_the_fuzz_everything_answers_and_nothing_changed(env: Env) -> None:
    stack = env.stack
    total = sum(env.sent.values())
    print(f"\nfuzz: {total} payloads {dict(env.sent)} in "
          f"{time.monotonic() - env.started:.0f} s")
    if SCALE >= 1:
        assert total >= 10_000, env.sent
    for proc in (stack.rasa, stack.actions, stack.console):
        assert proc is not None and proc.poll() is None, "a server died"
    assert httpx.get(f"{stack.rasa_url}/", timeout=30).status_code == 200
    assert httpx.get(f"{stack.actions_url}/health", timeout=30).status_code == 200
    assert httpx.get(f"{stack.console_url}/health", timeout=30).status_code == 200
    assert httpx.get(f"{stack.rasa_url}/webhooks/telegram/", timeout=30).json()["mode"] \
        == "webhook"
    answer = " ".join(r.get("text", "") for r in stack.say(
        "fuzz:after", "how many customers do we have", metadata=signed("manager:1", SECRET)))
    assert "4 customers" in answer
    lead_answer = " ".join(r.get("text", "") for r in stack.say(
        "fuzz:after-rep", "who are my hottest leads", metadata=signed("rep:2", SECRET)))
    assert "Lead 10," in lead_answer

    # The event broker writes from a queue, in order: once the last message is in,
    # everything the fuzz sent before it is too.
    eventually(lambda: sqlite_rows(stack.workdir / "crm.db", "SELECT COUNT(*) FROM interactions "
                                   "WHERE sender_id = 'fuzz:after-rep'") >= [(2,)])
    after = snapshot(stack.workdir)
    changed = [name for name in SNAPSHOT_SQL if after[name] != env.before[name]]
    assert not changed, {name: (env.before[name][:3], after[name][:3]) for name in changed}
    crm = stack.workdir / "crm.db"
    for table in ("tickets", "escalations", "interactions"):
        owned = sqlite_rows(crm, f"SELECT COUNT(*) FROM {table} WHERE customer_id IS NOT NULL "
                                 "AND id > 1" if table == "escalations" else
                            f"SELECT COUNT(*) FROM {table} WHERE customer_id IS NOT NULL")
        assert owned == [(0,)], f"fuzz created {table} rows tied to a customer"
    reps = sqlite_rows(crm, "SELECT COUNT(*) FROM interactions WHERE rep_id IS NOT NULL "
                            "AND sender_id LIKE 'fuzz:%' AND sender_id != 'fuzz:after-rep'")
    assert reps == [(0,)], "a forged identity was stored as a rep"
    # Errors the servers caught and logged (not failures: each was answered politely).
    for log in ("rasa.log", "actions.log", "console.log"):
        lines = (stack.workdir / log).read_text(errors="replace").splitlines()
        errors = Counter(re.sub(r"^\S+ \S+ ", "", line)[:120] for line in lines
                         if " ERROR " in line or "Traceback" in line)
        print(f"{log}: {sum(errors.values())} logged errors; {errors.most_common(5)}")


# --------------------------------------------------------------------------- known gaps
# These run last: the second one stops the Rasa server while the gap is open.


def test_telegram_update_of_the_wrong_shape_is_a_400(env: Env) -> None:
    url = f"{env.stack.rasa_url}/webhooks/telegram/webhook"
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    for body in (b"[]", b'"x"', b"5", b"null", b"NaN", b'{"update_id": 1, "message": "s"}',
                 b'{"update_id": 1, "message": ' + deep(5000).encode() + b"}",
                 json_bytes({"update_id": 2, "message": {
                     "message_id": 1, "date": 1e20, "chat": {"id": 1, "type": "private"}}})):
        r = httpx.post(url, content=body, headers=headers, timeout=30)
        assert r.status_code == 400, (body[:40], r.status_code)


def test_a_non_ascii_signature_is_just_anonymous(env: Env) -> None:
    """The same TypeError in bot/policy.py loses the message: not answered, not stored."""
    stack = env.stack
    forged = {"auth": {"user": "rep:2", "sig": "\u00e9" * 64}}
    replies = stack.say("fuzz:non-ascii-sig", "who are my hottest leads", metadata=forged)
    said = " ".join(r.get("text", "") for r in replies)
    count = ("SELECT COUNT(*) FROM interactions WHERE sender_id = 'fuzz:non-ascii-sig' "
             "AND direction = 'in'")
    eventually(lambda: sqlite_rows(stack.workdir / "crm.db", count) == [(1,)])
    stored = sqlite_rows(stack.workdir / "crm.db", count)
    r = httpx.get(f"{stack.console_url}/api/escalations", timeout=30,
                  headers={"X-CRM-User": "agent:1", "X-CRM-Sig": "\u00e9".encode()})
    assert "went wrong" not in said and "Lead " not in said
    assert stored == [(1,)], "the message was lost"
    assert r.status_code == 401


def _tg(env: Env, chat: int, text: str, replies: int) -> list[str]:
    url = f"{env.stack.rasa_url}/webhooks/telegram/webhook"
    update = {"update_id": 30_000_000 + replies + chat % 1000, "message": {
        "message_id": replies, "date": int(time.time()), "text": text,
        "chat": {"id": chat, "type": "private", "first_name": "Ada"},
        "from": {"id": chat, "is_bot": False, "first_name": "Ada"}}}
    r = httpx.post(url, content=json_bytes(update), timeout=30,
                   headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert r.status_code == 200
    env.telegram.wait_for("sendMessage", chat, count=replies, timeout=60)
    return env.telegram.texts(chat)


def test_a_rest_caller_cannot_speak_for_a_telegram_chat(env: Env) -> None:
    chat = 4_242_001
    email = sqlite_rows(env.stack.workdir / "crm.db",
                        "SELECT email FROM customers WHERE id = 12347")[0][0]
    _tg(env, chat, "where is my order 500001", 1)
    _tg(env, chat, f"my email is {email}", 2)
    deadline = time.monotonic() + 60
    while not any("500001" in t for t in env.telegram.texts(chat)):
        assert time.monotonic() < deadline, env.telegram.texts(chat)
        time.sleep(0.5)  # the Telegram customer is verified and heard their order
    r = httpx.post(f"{env.stack.rasa_url}/webhooks/rest/webhook", timeout=60,
                   json={"sender": f"tg:{chat}", "message": "where is my order"})
    said = " ".join(x.get("text", "") for x in r.json()) if r.status_code == 200 else ""
    assert r.status_code == 400 or "500001" not in said, said


def test_the_rasa_http_api_needs_a_token(env: Env) -> None:
    base = env.stack.rasa_url
    read = httpx.get(f"{base}/conversations/tg:4242001/tracker", timeout=30)
    write = httpx.post(f"{base}/conversations/fuzz:api-intruder/tracker/events", timeout=30,
                       json=[{"event": "slot", "name": "verified_customer", "value": "12347"}])
    said = " ".join(x.get("text", "") for x in env.stack.say("fuzz:api-intruder",
                                                             "where is my order"))
    assert read.status_code in (401, 403) and write.status_code in (401, 403), \
        (read.status_code, write.status_code)
    assert "500001" not in said

def test_one_rest_sender_flooding_gets_429_with_retry_after(env: Env) -> None:
    async def flood() -> list[httpx.Response]:
        async with client() as c:
            return list(await asyncio.gather(*(
                c.post(f"{env.stack.rasa_url}/webhooks/rest/webhook",
                       json={"sender": "fuzz:flood", "message": "hi"}) for _ in range(30))))

    started = time.monotonic()
    replies = asyncio.run(flood())
    elapsed = time.monotonic() - started
    limited = [r for r in replies if r.status_code == 429]
    assert limited, Counter(r.status_code for r in replies)
    # The default, 20 messages per 10 seconds: a burst of 20, then 2 a second.
    assert len(replies) - len(limited) <= 20 + 2 * elapsed + 1
    assert int(limited[0].headers["Retry-After"]) >= 1
    assert "wait" in limited[0].json()["reason"]
    other = httpx.post(f"{env.stack.rasa_url}/webhooks/rest/webhook", timeout=60,
                       json={"sender": "fuzz:not-flooding", "message": "hi"})
    assert other.status_code == 200  # the limit is per sender

def test_a_telegram_chat_id_that_is_not_a_number_is_refused(env: Env) -> None:
    url = f"{env.stack.rasa_url}/webhooks/telegram/webhook"
    headers = {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    body = {"update_id": 424242, "message": {"message_id": 1, "date": 0, "text": "hi",
                                              "chat": {"id": "\ud800", "type": "private"}}}
    r = httpx.post(url, content=json_bytes(body), headers=headers, timeout=30)
    time.sleep(5)  # handled in the background: is the server still there?
    assert env.stack.rasa.poll() is None, "the Rasa server stopped"
    assert r.status_code == 400
