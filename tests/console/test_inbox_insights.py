"""Helpdesk figures on the insights page: known answers, and a screenshot in headless Chromium.

The seeded set is the one of ``tests/crm_ml/test_helpdesk_stats.py``: six
conversations, three escalated (containment 50%), first responses of 8 and 4
minutes (median 6 min), resolutions of 30 and 60 minutes (median 45 min).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crm_ml.agents import create_agent
from crm_ml.db import migrate, session_scope
from crm_ml.db.models_helpdesk import ConversationRating
from tests.console.conftest import AGENT_PASSWORD, SECRET
from tests.crm_ml.test_helpdesk_stats import at, esc, msg

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def seed(url: str) -> None:
    with session_scope(url) as s:
        s.add_all([
            msg("web:a", "web", at(1, 10, 0)), msg("web:a", "web", at(1, 10, 1), "out"),
            msg("web:b", "web", at(1, 10, 10)), esc("web:b", "web", at(1, 10, 12), at(1, 10, 42)),
            msg("web:b", "web", at(1, 10, 20), "out", "agent"),
            msg("tg:c", "telegram", at(1, 11, 0)),
            esc("tg:c", "telegram", at(1, 11, 1), at(1, 12, 1)),
            msg("tg:c", "telegram", at(1, 11, 5), "out", "agent"),
            msg("web:d", "web", at(2, 9, 0)), msg("tg:e", "telegram", at(2, 9, 30)),
            msg("tg:f", "telegram", at(2, 9, 40)), esc("tg:f", "telegram", at(2, 9, 41)),
        ])


def section(html: str) -> str:
    start = html.index('<section id="helpdesk">')
    return html[start:html.index("</section>", start)]


def test_insights_page_shows_the_helpdesk_figures(agent: TestClient, crm: str) -> None:
    seed(crm)
    html = section(agent.get("/insights").text)
    assert '<span class="value">50%</span>contained by the bot' in html
    assert "escalated (3 of 6)" in html
    assert '<span class="value">6 min</span>first response' in html
    assert '<span class="value">45 min</span>time to resolution' in html
    assert "CSAT: no ratings yet" in html
    assert "<td>telegram</td><td>3</td><td>33%</td><td>67%</td><td>4 min</td><td>1.0 h</td>" \
        in html
    assert "<td>2026-03-02</td><td>3</td><td>67%</td><td>33%</td><td>–</td>" in html
    assert "<svg" in html  # contained and escalated per day


def test_csat_when_customers_rated(agent: TestClient, crm: str) -> None:
    seed(crm)
    with session_scope(crm) as s:
        s.add_all([ConversationRating(sender_id="web:b", channel="web", score=5,
                                      created_at=at(1, 10, 45)),
                   ConversationRating(sender_id="tg:c", channel="telegram", score=3,
                                      created_at=at(1, 12, 5))])
    html = section(agent.get("/insights").text)
    assert '<span class="value">50%</span>CSAT (2 ratings' in html


def test_empty_crm_says_so(agent: TestClient) -> None:
    assert 'id="helpdesk-empty"' in agent.get("/insights").text


# --- headless Chromium ---------------------------------------------------------------


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The console under uvicorn on loopback, on a seeded CRM with one agent."""
    from bench.stack import free_port, launch, stop, wait_http

    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium missing: `make browser` (apt-get install -y chromium)")
    workdir = tmp_path_factory.mktemp("helpdesk")
    url = f"sqlite:///{workdir / 'crm.db'}"
    migrate.upgrade(url)
    seed(url)
    create_agent("sam", "Sam Support", AGENT_PASSWORD, url=url)
    create_agent("kim", "Kim Keeper", AGENT_PASSWORD, url=url)
    port = free_port()
    log = workdir / "console.log"
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_IDENTITY_SECRET": SECRET,
           "CRM_RASA_URL": "http://127.0.0.1:5999"}
    env.pop("CRM_CONSOLE_SECRET", None)
    proc = launch([str(ROOT / ".venv" / "bin" / "python"), "-m", "uvicorn", "console.app:app",
                   "--ws", "none", "--host", "127.0.0.1", "--port", str(port)], log, env,
                  cwd=workdir)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, log, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def sign_in(page: object, server: str, user: str, target: str) -> None:
    page.goto(f"{server}/login?next={target}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", AGENT_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{target}")


@pytest.mark.e2e
def test_a_claim_shows_on_the_other_agents_open_thread(console_server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            sam, kim = (browser.new_context().new_page() for _ in range(2))
            sign_in(kim, console_server, "kim", "/escalations/3")
            sign_in(sam, console_server, "sam", "/escalations/3")
            assert kim.locator("#claim").get_attribute("data-claimed-by") == ""
            sam.click("#claim button")
            sam.wait_for_selector("text=You claimed this conversation")
            # Kim's page polls every 2 s and shows the claim without a click.
            kim.wait_for_selector("text=Claimed by", timeout=10_000)
            assert "Sam Support" in kim.locator("#claim").inner_text()
            kim.screenshot(path=str(ARTIFACTS / "console_claimed.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.e2e
def test_helpdesk_figures_in_chromium(console_server: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{console_server}/login?next=/insights")
            page.fill("input[name=username]", "sam")
            page.fill("input[name=password]", AGENT_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/insights")
            figures = page.locator("#helpdesk")
            assert figures.locator("#fig-containment .value").inner_text() == "50%"
            assert figures.locator("#fig-first-response .value").inner_text() == "6 min"
            assert "no ratings yet" in figures.locator("#fig-csat").inner_text()
            figures.screenshot(path=str(ARTIFACTS / "helpdesk_insights.png"))
            page.goto(f"{console_server}/?status=all")
            assert page.locator("tr[data-escalation]").count() == 3
            page.screenshot(path=str(ARTIFACTS / "console_inbox.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "helpdesk_insights.png").stat().st_size > 5_000
