"""bot.channels' REST channel (bot env) in a real Sanic server on loopback: the rate
limits per sender and per client address, as a client sees them (status codes,
``Retry-After``).

A client may name any sender id, so one that names a new sender for every
message is held by the bucket of its address (``CRM_RATE_LIMIT_IP``); the
address is the TCP peer unless the peer is a trusted proxy
(``CRM_TRUSTED_PROXIES``), and loopback has no address bucket unless
``CRM_RATE_LIMIT_IP_EXEMPT`` says otherwise.
"""

import asyncio
import itertools
import socket
from typing import Any, Dict, Iterator, List, Optional, Tuple

import httpx
import pytest
from sanic import Sanic

from bot.channels import CRMRestInput
from crm_ml import ratelimit
from crm_ml.config import get_settings

_apps = itertools.count()


class _Kept:
    """What the tracker store keeps of a conversation: no outbox here."""

    def get_slot(self, name: str) -> None:
        return None


class _Store:
    def peek(self, sender_id: str) -> _Kept:
        return _Kept()


class _Agent:
    tracker_store = _Store()


async def _echo(message: Any) -> None:
    await message.output_channel.send_text_message(message.sender_id, f"echo: {message.text}")


Request = Tuple[str, Optional[str]]  # (sender, X-Forwarded-For)


def post_all(requests: List[Request]) -> List[httpx.Response]:
    """Send the REST messages one after the other to a fresh server; their responses."""
    Sanic.test_mode = True
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario() -> List[httpx.Response]:
        app = Sanic(f"crm_rest_test_{next(_apps)}")
        app.ctx.agent = _Agent()
        app.blueprint(CRMRestInput().blueprint(_echo), url_prefix="/webhooks/rest")
        server = await app.create_server(host="127.0.0.1", port=port,
                                         return_asyncio_server=True)
        await server.startup()
        await server.before_start()
        await server.after_start()
        try:
            url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
            replies = []
            async with httpx.AsyncClient(timeout=30) as client:
                for sender, forwarded in requests:
                    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
                    replies.append(await client.post(
                        url, json={"sender": sender, "message": "hi"}, headers=headers))
            return replies
        finally:
            await server.before_stop()
            server.close()
            await server.wait_closed()
            await server.after_stop()

    return asyncio.run(scenario())


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set CRM_* variables for one test; settings and limiters start afresh around it."""
    for name in ("CRM_RATE_LIMIT", "CRM_RATE_LIMIT_IP", "CRM_TRUSTED_PROXIES",
                 "CRM_RATE_LIMIT_IP_EXEMPT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    ratelimit.reset_limiters()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()
    ratelimit.reset_limiters()


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def statuses(replies: List[httpx.Response]) -> List[int]:
    return [r.status_code for r in replies]


def rotating(n: int, forwarded: Optional[str] = None) -> List[Request]:
    return [(f"rotating:{i}", forwarded) for i in range(n)]


def test_rotating_sender_ids_meet_the_address_limit(settings: pytest.MonkeyPatch) -> None:
    configure(settings, CRM_RATE_LIMIT_IP="3/60", CRM_RATE_LIMIT_IP_EXEMPT="none")
    replies = post_all(rotating(5))
    assert statuses(replies) == [200, 200, 200, 429, 429]
    assert replies[0].json() == [{"recipient_id": "rotating:0", "text": "echo: hi"}]
    refused = replies[3]
    assert int(refused.headers["Retry-After"]) == 20  # 3 per 60 s: one every 20 s
    body: Dict[str, Any] = refused.json()
    assert body["error"] == "too_many_requests" and "wait" in body["reason"]


def test_a_forged_forwarded_for_header_is_ignored(settings: pytest.MonkeyPatch) -> None:
    """No trusted proxy: writing a new X-Forwarded-For each time gets no new bucket."""
    configure(settings, CRM_RATE_LIMIT_IP="2/60", CRM_RATE_LIMIT_IP_EXEMPT="none")
    replies = post_all([(f"forged:{i}", f"198.51.100.{i}") for i in range(4)])
    assert statuses(replies) == [200, 200, 429, 429]


def test_the_sender_limit_still_holds_within_the_address_budget(
        settings: pytest.MonkeyPatch) -> None:
    configure(settings, CRM_RATE_LIMIT="2/60", CRM_RATE_LIMIT_IP_EXEMPT="none")  # 20/60 each
    replies = post_all([("one", None)] * 3 + rotating(3))
    assert statuses(replies) == [200, 200, 429, 200, 200, 200]


def test_loopback_is_not_address_limited_by_default(settings: pytest.MonkeyPatch) -> None:
    """This machine's tests, load test and benchmark talk from 127.0.0.1."""
    configure(settings, CRM_RATE_LIMIT_IP="2/60")
    assert statuses(post_all(rotating(10))) == [200] * 10


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
        settings: pytest.MonkeyPatch) -> None:
    """nginx on this machine: every request comes from 127.0.0.1, the client is named
    in X-Forwarded-For (nginx appends it to what the client sent)."""
    configure(settings, CRM_RATE_LIMIT_IP="2/60", CRM_TRUSTED_PROXIES="127.0.0.1")
    replies = post_all([
        ("a:1", "198.51.100.1"), ("a:2", "198.51.100.1"), ("a:3", "198.51.100.1"),
        ("a:4", "6.6.6.6, 198.51.100.1"),  # the client's own header part is not believed
        ("b:1", "198.51.100.2"),  # another client, its own bucket
        ("local:1", None), ("local:2", None), ("local:3", None),  # no header: this machine
    ])
    assert statuses(replies) == [200, 200, 429, 429, 200, 200, 200, 200]


def test_a_retried_message_gets_the_replies_already_given() -> None:
    from types import SimpleNamespace

    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from bot.channels import answered, parse_rest_payload

    tracker = DialogueStateTracker.from_events("web:r", [
        UserUttered("hi", message_id="m1"), ActionExecuted("utter_greet"),
        BotUttered("Hello!"), BotUttered("How can I help?", data={"buttons": [{"t": 1}]}),
        UserUttered("hours?", message_id="m2"), BotUttered("9 to 5."),
    ])

    async def get_tracker(sender_id: str) -> DialogueStateTracker:
        return tracker

    published: List[Dict[str, Any]] = []

    class Broker:
        durable_queue = False

        def publish(self, event: Dict[str, Any]) -> None:
            published.append(event)

    app = SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(
        processor=SimpleNamespace(get_tracker=get_tracker),
        tracker_store=SimpleNamespace(event_broker=Broker()))))
    assert asyncio.run(answered(app, "web:r", "m1")) == [
        {"recipient_id": "web:r", "text": "Hello!"},
        {"recipient_id": "web:r", "text": "How can I help?", "buttons": [{"t": 1}]}]
    # the turn's events go to the event broker again (stored once per event id)
    assert [(e["event"], e.get("text")) for e in published] == [
        ("user", "hi"), ("bot", "Hello!"), ("bot", "How can I help?")]
    assert {e["sender_id"] for e in published} == {"web:r"}
    assert asyncio.run(answered(app, "web:r", "m2")) == [
        {"recipient_id": "web:r", "text": "9 to 5."}]
    assert asyncio.run(answered(app, "web:r", "m3")) is None
    assert parse_rest_payload(b'{"sender": "a", "message": "x", "message_id": "k-1"}')[
        "message_id"] == "k-1"
    with pytest.raises(ValueError, match="message_id"):
        parse_rest_payload(b'{"sender": "a", "message": "x", "message_id": 5}')
