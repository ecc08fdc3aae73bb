"""The whole handoff in real browsers: web chat (socket.io) <-> Rasa <-> agent console.

Debian's Chromium, driven by Playwright (no browser download): a signed-in
customer chats on ``/chat``, gets upset and is handed over; an agent, signed in
to the console in a second browser context, sees the conversation in the inbox,
answers (the answer appears in the customer's chat, also after a dropped
connection), and resolves; the bot is back. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_ml import loader
from crm_ml.agents import create_agent
from crm_ml.db import migrate, session_scope
from crm_ml.db import models as m
from crm_ml.db.models_helpdesk import ConversationRating
from crm_ml.db.session import get_engine
from crm_ml.identity import sign
from tests.support.retail import retail_frame
from tests.support.servers import ROOT, Stack, assistant

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
SECRET = "webchat-e2e-secret"
AGENT_USER, AGENT_PASSWORD = "sam", "sam-the-agent"
ANGRY = [
    "this is absolutely terrible, my order never arrived and nobody answers. worst service ever",
    "i am furious, this is a disgrace and a complete waste of my money",
]
ASK_HUMAN = "I want to talk to a human agent"
WAIT_MS = 30_000

WEBCHAT_CHANNEL = """
# The web chat (socket.io, web:<session> sender ids).
bot.webchat.WebChatInput:
  user_message_evt: user_uttered
  bot_message_evt: bot_uttered
"""


def webchat_credentials(workdir: Path) -> Path:
    """The project's credentials.yml with the web chat's channel instead of plain socketio."""
    kept: list[str] = []
    skipping = False
    for line in (ROOT / "credentials.yml").read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            skipping = line.split(":", 1)[0].strip() in {"socketio", "bot.webchat.WebChatInput"}
        if not skipping:
            kept.append(line)
    path = workdir / "credentials.yml"
    path.write_text("\n".join(kept) + "\n" + WEBCHAT_CHANNEL)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium missing: `make browser` (apt-get install -y chromium)")
    workdir = tmp_path_factory.mktemp("webchat")
    url = f"sqlite:///{workdir / 'crm.db'}"
    migrate.upgrade(url)
    with get_engine(url).begin() as conn:
        loader.load_retail(conn, loader.prepare_retail(retail_frame()), data_hash="e2e")
    create_agent(AGENT_USER, "Sam Support", AGENT_PASSWORD, url=url)
    env = {"CRM_IDENTITY_SECRET": SECRET, "CRM_SUPPORT_HOURS": "always"}
    with assistant(workdir, url, extra_env=env, console=True,
                   credentials=webchat_credentials(workdir)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield browser
        browser.close()


def shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"webchat-{name}.png"), full_page=True)


def bot_texts(chat: object) -> list[str]:
    return chat.locator("#chat-log .from-bot").all_inner_texts()


def wait_bot(chat: object, pattern: str, after: int = 0, timeout: int = WAIT_MS) -> str:
    """Wait for a bot message matching ``pattern`` among those after the first ``after``."""
    rx = re.compile(pattern, re.I)
    chat.wait_for_function(
        """([after, source]) => Array.from(document.querySelectorAll('#chat-log .from-bot'))
             .slice(after).some(el => new RegExp(source, 'i').test(el.innerText))""",
        arg=[after, pattern], timeout=timeout)
    return next(t for t in bot_texts(chat)[after:] if rx.search(t))


def say(chat: object, text: str) -> int:
    """Type a message; return how many bot messages there were before it."""
    before = len(bot_texts(chat))
    chat.fill("#chat-input", text)
    chat.click("#chat-send")
    return before


def open_chat(browser: object, stack: Stack, customer: int = 12347) -> object:
    user = f"customer:{customer}"
    page = browser.new_context(viewport={"width": 600, "height": 800}).new_page()
    page.goto(f"{stack.console_url}/chat?user={user}&sig={sign(user, SECRET)}")
    page.wait_for_selector("#chat[data-state=online]", timeout=WAIT_MS)
    return page


def sign_in_agent(browser: object, stack: Stack) -> object:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{stack.console_url}/")
    assert "/login" in page.url
    page.fill("input[name=username]", AGENT_USER)
    page.fill("input[name=password]", AGENT_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("h1:has-text('Inbox')", timeout=WAIT_MS)
    return page


def test_web_chat_buttons_images_and_reconnect(browser: object, stack: Stack) -> None:
    chat = open_chat(browser, stack, customer=12348)
    session = chat.get_attribute("#chat", "data-session")
    assert session and re.fullmatch(r"[0-9a-f]{32}", session)
    before = say(chat, "hello")
    wait_bot(chat, r"^Hello", after=before)

    # Buttons send their payload; images render. (The bot's domain has neither yet,
    # so the page receives them as Rasa's socket.io output would send them.)
    chat.evaluate("""() => {
        const handler = window.crmChat.socket.listeners('bot_uttered')[0];
        handler({text: 'Pick one', quick_replies: [
            {content_type: 'text', title: 'Say hello', payload: '/greet'}]});
        handler({attachment: {type: 'image', payload: {src: 'data:image/svg+xml,' +
            encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" width="160" ' +
            'height="60"><rect width="160" height="60" fill="#2c6fbb"/></svg>')}}});
    }""")
    chat.wait_for_function("() => document.querySelector('#chat-log img.chat-image')"
                           ".naturalWidth === 160", timeout=WAIT_MS)
    before = len(bot_texts(chat))
    chat.click("button.chat-button:has-text('Say hello')")
    assert chat.locator("#chat-log .from-user").last.inner_text() == "Say hello"
    wait_bot(chat, r"^Hello", after=before)
    assert chat.locator("button.chat-button").first.is_disabled()
    shot(chat, "1-chat")

    # A dropped connection comes back to the same conversation.
    chat.evaluate("() => window.crmChat.socket.io.engine.close()")
    chat.wait_for_selector("#chat[data-state=online]", timeout=WAIT_MS)
    assert chat.get_attribute("#chat", "data-session") == session
    before = say(chat, "hi again")
    wait_bot(chat, r"^Hello", after=before)
    # So does a reload: same session, earlier messages shown again.
    chat.reload()
    chat.wait_for_selector("#chat[data-state=online]", timeout=WAIT_MS)
    assert chat.get_attribute("#chat", "data-session") == session
    assert "hi again" in chat.locator("#chat-log .from-user").all_inner_texts()
    chat.context.close()


def test_handoff_in_the_browser(browser: object, stack: Stack) -> None:
    agent = sign_in_agent(browser, stack)  # the visit makes the agent "online"
    chat = open_chat(browser, stack)
    session = chat.get_attribute("#chat", "data-session")
    before = say(chat, "hello")
    wait_bot(chat, r"^Hello", after=before)

    # The customer gets upset (or, failing that, asks for a person): handed over.
    handed = None
    for text in [*ANGRY, ASK_HUMAN]:
        before = say(chat, text)
        try:
            handed = wait_bot(chat, r"colleague", after=before, timeout=5_000)
            break
        except playwright_api.TimeoutError:
            continue
    assert handed and "They'll answer here" in handed, bot_texts(chat)
    say(chat, "hello?? anyone there")
    shot(chat, "2-chat-handed-over")

    # The conversation appears in the agent's inbox (it refreshes itself).
    row = agent.locator(f"tr[data-sender='web:{session}']")
    row.wait_for(timeout=WAIT_MS)
    with session_scope(f"sqlite:///{stack.workdir / 'crm.db'}") as s:
        name = s.get(m.Customer, 12347).name
    assert name in row.inner_text()
    shot(agent, "3-inbox")
    row.locator("a").first.click()
    agent.wait_for_selector("#transcript", timeout=WAIT_MS)
    agent.wait_for_function(
        "() => document.querySelector('#transcript').innerText.includes('anyone there')",
        timeout=WAIT_MS)
    shot(agent, "4-escalation")

    # The agent answers; it reaches the customer's chat.
    before = len(bot_texts(chat))
    agent.fill("#reply-form textarea", "Hi, I'm Sam from support. I'm looking at your order now.")
    agent.click("#reply-form button[type=submit]")
    agent.wait_for_selector("text=Sent to the customer", timeout=WAIT_MS)
    wait_bot(chat, r"Sam from support", after=before)
    # marked as a person's: its own bubble, with the agent's name
    marked = chat.locator("#chat-log .from-agent").last
    assert "Sam Support" in marked.locator(".who").inner_text()
    assert "Sam from support" in marked.inner_text()

    # After a dropped connection, the next answer still arrives.
    chat.evaluate("() => window.crmChat.socket.io.engine.close()")
    chat.wait_for_selector("#chat[data-state=online]", timeout=WAIT_MS)
    before = len(bot_texts(chat))
    agent.fill("#reply-form textarea", "Your parcel left our warehouse yesterday.")
    agent.click("#reply-form button[type=submit]")
    agent.wait_for_selector("text=Sent to the customer", timeout=WAIT_MS)
    wait_bot(chat, r"left our warehouse", after=before)
    shot(chat, "5-chat-agent-reply")
    shot(agent, "6-escalation-replied")

    # Resolve: the bot is back and answers again.
    before = len(bot_texts(chat))
    agent.click("#resolve-form button[type=submit]")
    agent.wait_for_selector("text=resolved: the bot has the conversation again",
                            timeout=WAIT_MS)
    wait_bot(chat, r"^I'm back", after=before)
    # then the rating prompt, as buttons; the customer's 5 is stored
    wait_bot(chat, r"How did we do", after=before)
    before = len(bot_texts(chat))
    chat.click("button.chat-button:has-text('5')")
    wait_bot(chat, r"Thank you for rating us 5 out of 5", after=before)
    with session_scope(f"sqlite:///{stack.workdir / 'crm.db'}") as s:
        scores = s.scalars(select(ConversationRating.score).where(
            ConversationRating.sender_id == f"web:{session}")).all()
    assert scores == [5]
    before = say(chat, "hello")
    wait_bot(chat, r"^Hello", after=before)
    shot(chat, "7-chat-bot-back")
    shot(agent, "8-inbox-after-resolve")
    assert agent.locator(f"tr[data-sender='web:{session}']").count() == 0

    agent.goto(f"{stack.console_url}/insights")
    agent.wait_for_selector("#hot-leads", timeout=WAIT_MS)
    shot(agent, "9-insights")
