"""The conversation tests (every file in tests/stories/) against the trained Rasa model.

Two passes, both in the bot env (Rasa 3.6) through subprocesses:

1. ``rasa test core`` over the stories, failing on any wrong prediction: every
   story's dialogue (rules, forms, the EscalationPolicy) must come out right.
2. A pass over the same stories with the real NLU. Without ``--e2e``, ``rasa
   test core`` takes the intents written in the stories at their word, and
   with ``--e2e`` it cannot work here (the sentiment entity spans the whole
   message, so it cannot be annotated next to an order number or an e-mail).
   So the script below parses every user text with the model and checks that
   the intent and the entities are the ones the story says, and that the real
   sentiment (label and confidence) through ``bot.policy``'s own escalation
   rules hands a conversation to a person exactly where a story expects
   ``action_handoff``. Test stories cannot carry an entity's confidence, so a
   single very negative message is checked here too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
BOT_RASA = ROOT / ".venv-bot" / "bin" / "rasa"
RASA_MODEL = ROOT / "models" / "rasa" / "crm.tar.gz"
STORIES = ROOT / "tests" / "stories"  # one file per part of the assistant
MIN_STORIES = 40
TIME_LIMIT_S = 300

# One very negative first message hands the customer to a person at once.
VERY_ANGRY = [
    "this is absolutely disgusting, worst shop ever, you stole my money",
    "you are the worst company i've ever dealt with, absolute scam",
]
# Staff are never escalated (the policy checks the signed identity): stories
# whose name starts with these words are a rep's or a manager's.
STAFF_PREFIXES = ("rep ", "manager ")
# The actions that ask for details through details_form when a message has none.
DETAILS_ACTIONS = {"action_complaint", "action_review", "action_edit_account"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _require_bot() -> None:
    if not BOT_RASA.exists():
        raise FileNotFoundError(f"{BOT_RASA} missing: run `make install` first")
    if not RASA_MODEL.exists():
        raise FileNotFoundError(f"{RASA_MODEL} missing: run `make train` first")


# --------------------------------------------------------------------------- rasa test core


@pytest.fixture(scope="module")
def rasa_test(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    _require_bot()
    out = tmp_path_factory.mktemp("story_results")
    command = [str(BOT_RASA), "test", "core", "--stories", str(STORIES),
               "--model", str(RASA_MODEL), "--fail-on-prediction-errors", "--out", str(out)]
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=TIME_LIMIT_S)
    print(f"rasa test core took {time.monotonic() - started:.0f} s")
    return run, out


def test_rasa_test_core_passes_every_story(rasa_test) -> None:
    run, out = rasa_test
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]

    report = json.loads((out / "story_report.json").read_text())
    conversations = report["conversation_accuracy"]
    assert conversations["total"] >= MIN_STORIES, conversations
    assert conversations["correct"] == conversations["total"], conversations

    failed = (out / "failed_test_stories.yml").read_text()
    assert "- story:" not in failed, failed
    assert "None of the test stories failed" in failed


# --------------------------------------------------------------------------- the real NLU

# Runs in the bot env: parses every user text of the stories (and the extra
# conversations given on stdin) with the model, and applies bot.policy's rules.
NLU_SCRIPT = r'''
import asyncio, json, logging, sys, types
import yaml

logging.disable(logging.CRITICAL)
from rasa.core.agent import Agent
from rasa.shared.core.events import ActionExecuted, ConversationResumed, UserUttered
from rasa.shared.nlu.training_data import entities_parser

from bot.policy import EscalationPolicy, escalation_reason, recent_user_turns

model, stories_path, config_path = sys.argv[1:4]
extra = json.load(sys.stdin)

defaults = EscalationPolicy.get_default_config()
threshold, complaint_threshold = defaults["negative_threshold"], defaults["complaint_threshold"]
for policy in yaml.safe_load(open(config_path)).get("policies") or []:
    if policy.get("name") == "bot.policy.EscalationPolicy":
        threshold = policy.get("negative_threshold", threshold)
        complaint_threshold = policy.get("complaint_threshold", complaint_threshold)
threshold = float(threshold)


def story_turns(story, refused_by_form):
    turns, steps = [], story.get("steps") or []
    active_loop, verified = None, False
    for i, step in enumerate(steps):
        if "active_loop" in step:
            active_loop = step["active_loop"]
        for slot in step.get("slot_was_set") or []:
            verified = verified or bool(isinstance(slot, dict) and slot.get("verified_customer"))
        if "user" not in step:
            continue
        raw = step["user"].strip()
        later = steps[i + 1:]
        until_next_user = later[:next((j for j, s in enumerate(later) if "user" in s), len(later))]
        following = next((s for s in until_next_user if "action" in s), {})
        started = [s["active_loop"] for s in until_next_user if s.get("active_loop")]
        answers_form = active_loop is not None and following.get("action") == active_loop
        turns.append({
            "text": entities_parser.replace_entities(raw),
            "want_intent": step.get("intent"),
            "want_entities": sorted([e["entity"], str(e["value"])] for e in
                                    entities_parser.find_entities_in_training_example(raw)),
            "next_action": following.get("action"),
            "starts_loop": started[0] if started else None,
            "verified": verified,
            "form": active_loop if answers_form else None,
            "form_refuses": refused_by_form.get(active_loop, []) if answers_form else [],
        })
    return turns


def refused_intents(domain):
    """Per form: the intents whose text its slot mappings do not take."""
    refused = {}
    for form, spec in domain.forms.items():
        names = set(spec.get("required_slots") or [])
        refused[form] = sorted({intent for slot in domain.slots if slot.name in names
                                for mapping in slot.mappings
                                for intent in mapping.get("not_intent") or []})
    return refused


async def run(agent, conversations):
    for conversation in conversations:
        events = []
        for turn in conversation["turns"]:
            parsed = await agent.parse_message(turn["text"])
            entities = parsed.get("entities") or []
            sentiment = next((e for e in entities if e["entity"] == "sentiment"), {})
            events.append(UserUttered(turn["text"], intent=parsed["intent"], entities=entities))
            turns = recent_user_turns(types.SimpleNamespace(events=events))
            turn.update({
                "intent": parsed["intent"]["name"],
                "entities": sorted([e["entity"], str(e["value"])] for e in entities),
                "sentiment": sentiment.get("value"),
                "confidence": sentiment.get("confidence"),
                "reason": escalation_reason(turns, threshold,
                                            complaint_threshold=complaint_threshold),
            })
            if turn.get("next_action") == "action_handoff":
                # The agent hands the conversation back before the next message.
                events += [ActionExecuted("action_handoff"), ConversationResumed()]


agent = Agent.load(model)
refused = refused_intents(agent.domain)
import pathlib
stories = [s for f in sorted(pathlib.Path(stories_path).glob("*.yml"))
           for s in yaml.safe_load(f.read_text()).get("stories") or []]
conversations = [{"story": s["story"], "turns": story_turns(s, refused)} for s in stories]
conversations += [{"story": name, "turns": [{"text": t} for t in texts]}
                  for name, texts in extra.items()]
asyncio.run(run(agent, conversations))
print("@@RESULT@@" + json.dumps({"threshold": threshold, "conversations": conversations}))
'''


@pytest.fixture(scope="module")
def nlu_pass() -> dict:
    _require_bot()
    extra = {f"very angry {i}": [text] for i, text in enumerate(VERY_ANGRY)}
    run = subprocess.run(
        [str(BOT_PY), "-c", NLU_SCRIPT, str(RASA_MODEL), str(STORIES), str(ROOT / "config.yml")],
        cwd=ROOT, env=_env(), input=json.dumps(extra), capture_output=True, text=True,
        timeout=TIME_LIMIT_S)
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    marker = run.stdout.rfind("@@RESULT@@")
    assert marker >= 0, run.stdout[-3000:]
    return json.loads(run.stdout[marker + len("@@RESULT@@"):])


def _story_turns(nlu_pass: dict):
    for conversation in nlu_pass["conversations"]:
        if conversation["story"].startswith("very angry"):
            continue
        for turn in conversation["turns"]:
            yield conversation["story"], turn


def test_there_are_enough_stories(nlu_pass) -> None:
    stories = [c for c in nlu_pass["conversations"] if not c["story"].startswith("very angry")]
    assert len(stories) >= 45
    assert all(c["turns"] for c in stories), "a story without a user message"


def test_story_intents_are_what_the_nlu_says(nlu_pass) -> None:
    """Every user text gets the story's intent.

    An answer to a form's question is the exception: the form takes the text
    whatever its intent (``from_text``), except for the intents its mapping
    refuses (deny, contact_human_agent), so for those turns only that matters.
    """
    wrong = []
    for story, turn in _story_turns(nlu_pass):
        if turn["intent"] == turn["want_intent"]:
            continue
        if turn["form"] and turn["intent"] not in turn["form_refuses"]:
            continue
        wrong.append(f"{story!r}: {turn['text']!r} is {turn['intent']}, the story says "
                     f"{turn['want_intent']}")
    assert not wrong, "\n".join(wrong)


def test_story_entities_are_what_the_nlu_extracts(nlu_pass) -> None:
    wrong = []
    for story, turn in _story_turns(nlu_pass):
        want = [e for e in turn["want_entities"] if e[0] != "sentiment"]
        got = [e for e in turn["entities"] if e[0] != "sentiment"]
        if want != got:
            wrong.append(f"{story!r}: {turn['text']!r} gives {got}, the story says {want}")
        for entity, value in turn["want_entities"]:
            if entity == "sentiment" and value != turn["sentiment"]:
                wrong.append(f"{story!r}: {turn['text']!r} is {turn['sentiment']}, "
                             f"the story says {value}")
    assert not wrong, "\n".join(wrong)


def test_handoffs_follow_the_real_sentiment_and_fallbacks(nlu_pass) -> None:
    wrong = []
    for story, turn in _story_turns(nlu_pass):
        if story.startswith(STAFF_PREFIXES):
            continue
        expected = turn["next_action"] == "action_handoff"
        if expected != (turn["reason"] is not None):
            wrong.append(
                f"{story!r}: after {turn['text']!r} ({turn['intent']}, {turn['sentiment']} "
                f"{turn['confidence']}) the policy would "
                f"{'hand over: ' + turn['reason'] if turn['reason'] else 'not hand over'}, "
                f"the story says {turn['next_action']}")
    assert not wrong, "\n".join(wrong)


def test_details_form_starts_where_the_actions_would_start_it(nlu_pass) -> None:
    """The stories start details_form (a FollowupAction at run time) only where
    actions/support.py would: when the message itself says nothing worth a ticket."""
    from actions.parsing import email_in, is_generic

    wrong = []
    for story, turn in _story_turns(nlu_pass):
        action = turn["next_action"]
        if action not in DETAILS_ACTIONS:
            continue
        if action == "action_edit_account" and not turn["verified"]:
            continue  # asks for the order number and e-mail first
        expected = is_generic(turn["text"]) and not (
            action == "action_edit_account" and email_in(turn["text"]))
        if expected != (turn["starts_loop"] == "details_form"):
            wrong.append(f"{story!r}: after {turn['text']!r}, {action} "
                         f"{'starts' if expected else 'does not start'} details_form")
    assert not wrong, "\n".join(wrong)


def test_a_very_negative_message_is_handed_over_at_once(nlu_pass) -> None:
    threshold = nlu_pass["threshold"]
    for conversation in nlu_pass["conversations"]:
        if not conversation["story"].startswith("very angry"):
            continue
        (turn,) = conversation["turns"]
        assert turn["sentiment"] == "negative", turn
        assert turn["reason"] in ("very negative message", "angry message"), turn
        if turn["reason"] == "very negative message":
            assert turn["confidence"] >= threshold, turn
