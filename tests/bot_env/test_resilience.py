"""bot.resilience (bot env): an unreachable, slow or failing action server gets the
customer a polite answer, and the conversation goes on once it is back.

The action server is a small aiohttp app on loopback whose behaviour each test
sets: answer, fail with a status, or hang.
"""

import asyncio
import socket
import time
from pathlib import Path

import pytest
from aiohttp import web
from rasa.core.actions.action import ActionExecutionRejection, RemoteAction
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from bot import resilience

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "rasa" / "crm.tar.gz"
DOMAIN = Domain.load(str(ROOT / "domain"))
APOLOGY = DOMAIN.responses["utter_crm_unavailable"][0]["text"]
ANSWER = "We have 4 customers."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ActionServer:
    """A stand-in for rasa-sdk: ``mode`` is ``ok``, ``hang``, ``500`` or ``400``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls: list[str] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook"

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(body["next_action"])
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "500":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "400":
            return web.json_response({"action_name": body["next_action"], "error": "no"},
                                     status=400)
        return web.json_response({"events": [], "responses": [{"text": ANSWER}]})

    async def start(self) -> "ActionServer":
        app = web.Application()
        app.router.add_post("/webhook", self._webhook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture(autouse=True)
def wrapped():
    assert resilience.install()  # importing `bot` did it; Rasa's module is loaded here
    yield


def tracker_after(*texts: str) -> DialogueStateTracker:
    events = [ActionExecuted("action_listen")]
    for text in texts:
        events += [UserUttered(text), ActionExecuted("action_listen")]
    return DialogueStateTracker.from_events("s-1", events[:-1], slots=DOMAIN.slots)


async def run_action(url: str, tracker: DialogueStateTracker, domain: Domain = DOMAIN,
                     **endpoint) -> list:
    action = RemoteAction("action_customer_count", EndpointConfig(url, **endpoint))
    return await action.run(CollectingOutputChannel(), TemplatedNaturalLanguageGenerator(
        domain.responses), tracker, domain)


def test_the_wrapper_is_installed_once():
    assert getattr(RemoteAction.run, "_crm_resilient", False)
    resilience.install()
    assert not getattr(RemoteAction.run.__wrapped__, "_crm_resilient", False)


def test_unreachable_server_gets_the_domains_apology():
    events = asyncio.run(run_action(f"http://127.0.0.1:{free_port()}/webhook",
                                    tracker_after("how many customers")))
    assert events == [BotUttered(APOLOGY, metadata={"utter_action": "utter_crm_unavailable"})]
    assert "nothing you've said is lost" in APOLOGY


def test_without_the_response_in_the_domain_the_builtin_text_is_said():
    bare = Domain.from_dict({"actions": ["action_customer_count"]})
    events = asyncio.run(run_action(f"http://127.0.0.1:{free_port()}/webhook",
                                    tracker_after("hi"), domain=bare))
    assert [e.text for e in events] == [resilience.FALLBACK_TEXT]


def test_the_apology_is_said_once_per_turn():
    tracker = tracker_after("hi")
    tracker.update(BotUttered(APOLOGY, metadata={"utter_action": "utter_crm_unavailable"}))
    url = f"http://127.0.0.1:{free_port()}/webhook"
    assert asyncio.run(run_action(url, tracker)) == []
    tracker.update(UserUttered("again?"))  # a new turn: said again
    assert len(asyncio.run(run_action(url, tracker))) == 1


def test_slow_server_times_out_at_the_endpoints_timeout():
    async def scenario():
        server = await ActionServer().start()
        server.mode = "hang"
        try:
            started = time.monotonic()
            events = await run_action(server.url, tracker_after("hi"), timeout=0.5)
            return events, time.monotonic() - started
        finally:
            await server.stop()

    events, took = asyncio.run(scenario())
    assert [e.text for e in events] == [APOLOGY]
    assert 0.5 <= took < 5


def test_error_status_gets_an_apology_but_a_rejection_stays_a_rejection():
    async def scenario():
        server = await ActionServer().start()
        try:
            server.mode = "500"
            failed = await run_action(server.url, tracker_after("hi"))
            server.mode = "400"
            with pytest.raises(ActionExecutionRejection):
                await run_action(server.url, tracker_after("hi"))
            server.mode = "ok"
            ok = await run_action(server.url, tracker_after("hi"))
            return failed, ok
        finally:
            await server.stop()

    failed, ok = asyncio.run(scenario())
    assert [e.text for e in failed] == [APOLOGY]
    assert [e.text for e in ok] == [ANSWER]


@pytest.mark.parametrize("raw,expected", [
    (None, resilience.DEFAULT_TIMEOUT), ("", resilience.DEFAULT_TIMEOUT), (5, 5.0),
    ("2.5", 2.5), ("soon", resilience.DEFAULT_TIMEOUT), (0, resilience.DEFAULT_TIMEOUT),
])
def test_timeout_setting(raw, expected):
    endpoint = EndpointConfig("http://x", **({} if raw is None else {"timeout": raw}))
    assert resilience.action_timeout(endpoint) == expected
    assert resilience.action_timeout(None) == resilience.DEFAULT_TIMEOUT


# -- the trained model: down, slow, back -----------------------------------------


@pytest.mark.skipif(not MODEL.is_file(), reason="no trained Rasa model: run `make train`")
def test_the_conversation_goes_on_after_the_action_server_comes_back():
    from rasa.core.agent import Agent

    async def say(agent: Agent, text: str) -> list[str]:
        out = CollectingOutputChannel()
        await agent.handle_message(UserMessage(text, out, "web:resilience"))
        return [m.get("text") for m in out.messages]

    async def scenario():
        server = ActionServer()
        endpoint = EndpointConfig(server.url, timeout=1)
        agent = Agent.load(str(MODEL), action_endpoint=endpoint)
        question = "how many customers do we have"
        replies = {"down": await say(agent, question)}
        await server.start()
        server.mode = "hang"
        started = time.monotonic()
        replies["slow"] = await say(agent, question)
        slow_took = time.monotonic() - started
        server.mode = "ok"
        replies["back"] = await say(agent, question)
        replies["hello"] = await say(agent, "hello")
        await server.stop()
        tracker = await agent.tracker_store.retrieve("web:resilience")
        return replies, slow_took, tracker, server.calls

    replies, slow_took, tracker, calls = asyncio.run(scenario())
    assert replies["down"] == [APOLOGY]
    assert replies["slow"] == [APOLOGY] and slow_took < 10
    assert replies["back"] == [ANSWER]  # the same prediction as before the outage
    assert replies["hello"][0].startswith("Hello")
    assert calls == ["action_customer_count", "action_customer_count"]
    actions = [e.action_name for e in tracker.events if isinstance(e, ActionExecuted)
               and e.action_name not in {"action_listen", "action_session_start"}]
    assert actions.count("action_customer_count") == 3  # logged as run, each time
    said = [e.text for e in tracker.events if isinstance(e, BotUttered)]
    assert said[:3] == [APOLOGY, APOLOGY, ANSWER]
