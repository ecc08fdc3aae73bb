"""bot.speedups: the sequential graph runner and the cached validator change nothing
but speed (bot env, the trained model)."""

import asyncio
import tempfile
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parents[2] / "models" / "rasa" / "crm.tar.gz"
pytestmark = pytest.mark.skipif(not MODEL.is_file(),
                                reason="no trained Rasa model: run `make train`")

TURNS = ["hi", "what delivery options do you have", "how do i pay",
         "this is useless, nothing works", "thanks, bye", "", "what's the capital of peru"]


def _runner(cls):
    from rasa.engine import loader
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    tmp = tempfile.mkdtemp()
    _, runner = loader.load_predict_graph_runner(Path(tmp), MODEL, LocalModelStorage, cls)
    return runner


def _conversation(runner, turns=TURNS):
    """A conversation on an in-memory tracker store; what the bot did and said."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    agent = Agent.load(str(MODEL))
    agent.processor.graph_runner = runner

    async def talk():
        out = []
        for text in turns:
            channel = CollectingOutputChannel()
            await agent.handle_message(UserMessage(text, channel, "speedups-test"))
            out.append([m.get("text") for m in channel.messages])
        tracker = await agent.tracker_store.retrieve("speedups-test")
        events = [(e.type_name, getattr(e, "action_name", None) or getattr(e, "intent", {})
                   .get("name")) for e in tracker.events]
        return out, events

    return asyncio.run(talk())


def _ours_and_rasas(owner, name):
    """The patched attribute and Rasa's own, side by side."""
    from bot import speedups

    speedups.install()
    ours = getattr(owner, name)
    with speedups.rasa_originals():
        rasas = getattr(owner, name)
    assert ours is not rasas
    return ours, rasas


def test_sequential_runner_and_rule_matching_give_what_rasa_gives():
    from rasa.engine.runner.dask import DaskGraphRunner

    from bot import speedups
    from bot.speedups import SequentialGraphRunner

    speedups.install()
    with speedups.rasa_originals():  # Rasa's own code for the baseline
        dask_replies, dask_events = _conversation(_runner(DaskGraphRunner))
    ours_replies, ours_events = _conversation(_runner(SequentialGraphRunner))
    assert ours_replies == dask_replies
    assert ours_events == dask_events
    assert any(kind == "action" and name == "utter_greet" for kind, name in ours_events)


def test_rules_matched_from_the_end_are_the_rules_rasa_finds(monkeypatch):
    """Every rule lookup of a long conversation, ours and Rasa's side by side."""
    from rasa.core.policies.rule_policy import RulePolicy

    from bot.speedups import SequentialGraphRunner

    fast, slow = _ours_and_rasas(RulePolicy, "_get_possible_keys")
    history_lengths = []

    def both(self, lookup, states):
        got = fast(self, lookup, states)
        assert got == slow(self, lookup, states)
        history_lengths.append(len(states))
        return got

    monkeypatch.setattr(RulePolicy, "_get_possible_keys", both)
    _conversation(_runner(SequentialGraphRunner), TURNS * 3)
    assert len(history_lengths) > 30 and max(history_lengths) > 20


def test_sequential_runner_reports_a_clashing_input():
    from rasa.engine.exceptions import GraphRunError

    from bot.speedups import SequentialGraphRunner

    runner = _runner(SequentialGraphRunner)
    node = next(iter(runner._graph_schema.nodes))
    with pytest.raises(GraphRunError):
        runner.run(inputs={"__message__": node})


def test_cached_validator_accepts_and_rejects_like_rasa():
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction

    from bot import speedups

    speedups.install()
    action = RemoteAction("action_x", None)
    good = {"events": [{"event": "slot", "name": "a", "value": 1}],
            "responses": [{"text": "hi"}]}
    assert action._validate_action_result(good) is True
    for bad in ({"events": [{"event": "no_such_event"}]}, {"responses": "hi"},
                {"events": "slot"}):
        with pytest.raises(ValidationError, match="Failed to validate Action server"):
            action._validate_action_result(bad)


def test_action_calls_reuse_one_kept_alive_connection():
    """Three calls through Rasa's EndpointConfig: one TCP connection, answers intact."""
    from aiohttp import web
    from rasa.utils.endpoints import EndpointConfig

    from bot import speedups

    speedups.install()
    peers = []

    async def handler(request):
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"events": [], "echo": (await request.json())["n"]})

    async def scenario():
        app = web.Application()
        app.router.add_post("/webhook", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook")
        answers = [await endpoint.request(json={"n": n}, method="post") for n in range(3)]
        await runner.cleanup()
        return answers

    answers = asyncio.run(scenario())
    assert [a["echo"] for a in answers] == [0, 1, 2]
    assert len(set(peers)) == 1  # the same client port: the connection was reused


def test_states_walked_once_are_the_states_rasa_computes(monkeypatch):
    """Every event of every conversation test (forms included), then a rewind and a
    restart: after each one, the kept walk's states equal Rasa's, for each variant."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import Restarted, UserUtteranceReverted
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader

    from bot import speedups

    root = MODEL.parents[2]
    domain = Domain.load(str(root / "domain"))
    steps = YAMLStoryReader(domain).read_from_file(str(root / "tests" / "stories" / "core.yml"))
    assert len(steps) > 30
    ours, rasas = _ours_and_rasas(Domain, "states_for_tracker_history")
    walks = []

    class Counted(speedups._Walk):
        __slots__ = ()

        def __init__(self, *args):
            super().__init__(*args)
            walks.append(self)

    monkeypatch.setattr(speedups, "_Walk", Counted)
    variants = [(False, False, None), (True, False, None),
                (False, True, {"slots": ["pending_action"], "active_loops": ["address_form"]})]
    compared = 0
    for step in steps:
        tracker = DialogueStateTracker("walk", domain.slots)
        for event in list(step.events) + [UserUtteranceReverted(), Restarted()]:
            tracker.update(event)
            for omit, rule_only, data in variants:
                got = ours(domain, tracker, omit, rule_only, data)
                assert got == rasas(domain, tracker, omit, rule_only, data)
                got[-1].clear()  # what callers do to the states must not reach the walk
                assert ours(domain, tracker, omit, rule_only, data) == rasas(
                    domain, tracker, omit, rule_only, data)
                compared += 1
    assert compared > 1000
    assert len(walks) < compared / 2  # of 2 x compared calls: most only stepped on
