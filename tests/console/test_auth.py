"""Console sign-in: agents only, sessions, CSRF on every form.

Password hashes and agent accounts: tests/crm_ml/test_agents.py.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer

from console import auth
from crm_ml import agents
from crm_ml.config import get_settings
from tests.console.conftest import AGENT_PASSWORD, csrf_of, login, signed

PAGES = ["/", "/insights", "/escalations/1", "/inbox/rows"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_the_login(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=")


def test_json_endpoints_answer_401_not_a_redirect(client: TestClient) -> None:
    assert client.get("/escalations/1/live").status_code == 401
    assert client.get("/inbox/rows", headers={"X-Requested-With": "fetch"}).status_code == 401
    assert client.get("/api/escalations").status_code == 401


@pytest.mark.parametrize("user", ["rep:2", "manager:1", "customer:12347"])
def test_signed_in_non_agents_get_403(client: TestClient, user: str) -> None:
    for path in ["/", "/insights", "/escalations/1"]:
        r = client.get(path, headers=signed(user))
        assert r.status_code == 403, path
        assert "support agents only" in r.text


def test_a_session_of_a_non_agent_gets_403(client: TestClient) -> None:
    cookie = URLSafeTimedSerializer(auth.session_secret(), salt="crm-console-session").dumps(
        {"user": "rep:2", "pw": "x", "csrf": "t"})
    client.cookies.set(auth.SESSION_COOKIE, cookie)
    assert client.get("/").status_code == 403


def test_forged_signatures_and_cookies_are_strangers(client: TestClient, agent_id: int) -> None:
    r = client.get("/", headers={"X-CRM-User": f"agent:{agent_id}", "X-CRM-Sig": "0" * 64})
    assert r.status_code == 303
    forged = URLSafeTimedSerializer("not the secret", salt="crm-console-session").dumps(
        {"user": f"agent:{agent_id}", "pw": "x", "csrf": "t"})
    client.cookies.set(auth.SESSION_COOKIE, forged)
    assert client.get("/").status_code == 303


def test_signed_agents_may_use_the_pages(client: TestClient, agent_id: int) -> None:
    assert client.get("/", headers=signed(f"agent:{agent_id}")).status_code == 200


def test_wrong_password_fails(client: TestClient, agent_id: int) -> None:
    r = login(client, password="wrong password")
    assert r.status_code == 401
    assert "Wrong username or password" in r.text
    assert client.get("/").status_code == 303
    r = login(client, username="nobody")
    assert r.status_code == 401


def test_right_password_signs_in_and_out(client: TestClient, agent_id: int) -> None:
    r = login(client, next="/insights")
    assert (r.status_code, r.headers["location"]) == (303, "/insights")
    page = client.get("/")
    assert page.status_code == 200
    assert "Sam Support" in page.text
    r = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert r.status_code == 303
    assert client.get("/").status_code == 303


def test_after_login_only_local_pages(client: TestClient, agent_id: int) -> None:
    for target in ["//evil.example/x", "https://evil.example/", "/\\evil.example"]:
        assert login(client, next=target).headers["location"] == "/"


def test_csrf_token_required(client: TestClient, agent_id: int) -> None:
    client.get("/login")
    r = client.post("/login", data={"username": "sam", "password": AGENT_PASSWORD})
    assert r.status_code == 403
    r = client.post("/login", data={"username": "sam", "password": AGENT_PASSWORD,
                                    "csrf_token": "guessed"})
    assert r.status_code == 403
    assert login(client).status_code == 303
    for path in ["/escalations/1/reply", "/escalations/1/resolve", "/logout"]:
        r = client.post(path, data={"text": "hi"})
        assert r.status_code == 403, path
        assert "expired" in r.text
    assert client.get("/").status_code == 200  # still signed in


def test_the_csrf_token_changes_at_sign_in(client: TestClient, agent_id: int) -> None:
    before = csrf_of(client.get("/login").text)
    login(client)
    after = csrf_of(client.get("/").text)
    assert before != after


def test_a_new_password_signs_old_sessions_out(client: TestClient, crm: str,
                                               agent_id: int) -> None:
    login(client)
    assert client.get("/").status_code == 200
    agents.set_password("sam", "another good password", url=crm)
    assert client.get("/").status_code == 303


def test_too_many_wrong_passwords_lock_the_name(client: TestClient, agent_id: int) -> None:
    for _ in range(auth.MAX_FAILURES):
        assert login(client, password="bad guess!").status_code == 401
    assert login(client).status_code == 429


def test_a_flood_of_made_up_names_stays_bounded_and_keeps_the_lock(
        client: TestClient, agent_id: int) -> None:
    """100,000 distinct failed usernames: bounded memory, and the real name stays locked."""
    for _ in range(auth.MAX_FAILURES):
        assert login(client, password="bad guess!").status_code == 401
    assert login(client).status_code == 429
    for i in range(100_000):  # what authenticate() records for each wrong guess
        auth._record_failure(f"attacker-{i}")
        if i % 10_000 == 0:
            assert len(auth._failures) <= 2 * auth.MAX_TRACKED_NAMES
    assert len(auth._failures) <= auth.MAX_TRACKED_NAMES + 1
    assert login(client).status_code == 429  # still locked: the flood unlocked nothing
    assert not auth.too_many_failures("attacker-99999")  # one wrong guess locks nothing
    assert len(auth._failures) <= auth.MAX_TRACKED_NAMES + 1  # asking adds no entry
    for i in range(100_000):  # asking about names never stores them
        auth.too_many_failures(f"prober-{i}")
    assert len(auth._failures) <= auth.MAX_TRACKED_NAMES + 1


def test_lockout_still_works_during_a_flood(client: TestClient, agent_id: int) -> None:
    for i in range(3 * auth.MAX_TRACKED_NAMES):
        auth._record_failure(f"attacker-{i}")
    for _ in range(auth.MAX_FAILURES):
        assert login(client, password="bad guess!").status_code == 401
    assert login(client).status_code == 429


def test_failed_sign_ins_expire_and_a_right_password_resets() -> None:
    now = [1000.0]
    counter = auth.FailedSignIns(limit=3, window=60, max_names=4, clock=lambda: now[0])
    for _ in range(2):
        counter.record("sam")
    counter.reset("sam")  # signed in: the count starts again
    for _ in range(2):
        counter.record("sam")
    assert not counter.is_locked("sam")
    counter.record("sam")
    assert counter.is_locked("sam")
    now[0] += 59
    assert counter.is_locked("sam")
    now[0] += 1
    assert not counter.is_locked("sam")  # locked for the window, then free
    counter.record("ann")
    now[0] += 61
    counter.record("bob")  # stale entries go as new failures come in
    assert len(counter) == 1
    for name in ("a", "b", "c", "d", "e", "f"):
        counter.record(name)
    assert len(counter) == 4  # the least recently failed names go first
    counter.record("x" * 10_000)
    assert all(len(k) <= auth.MAX_USERNAME for k in counter._counting)


def test_no_secret_no_sessions(client: TestClient, env: pytest.MonkeyPatch,
                               agent_id: int) -> None:
    from crm_ml.config import get_settings

    env.setenv("CRM_IDENTITY_SECRET", "")
    env.setenv("CRM_CONSOLE_SECRET", "")
    get_settings.cache_clear()
    assert auth.session_secret() is None
    r = client.get("/login")
    assert r.status_code == 503
    assert "CRM_CONSOLE_SECRET" in r.text
    r = client.post("/login", data={"username": "sam", "password": AGENT_PASSWORD})
    assert r.status_code == 503
    assert auth.SESSION_COOKIE not in r.cookies
    assert client.get("/").status_code == 303


def test_console_secret_wins_over_the_identity_secret(env: pytest.MonkeyPatch,
                                                      crm: str) -> None:
    from crm_ml.config import get_settings

    derived = auth.session_secret()
    assert derived and derived != "console-test-secret"
    env.setenv("CRM_CONSOLE_SECRET", "its-own-secret")
    get_settings.cache_clear()
    assert auth.session_secret() == "its-own-secret"


def test_demo_agent(client: TestClient, crm: str, env: pytest.MonkeyPatch) -> None:
    env.delenv("CRM_DEMO_AGENT_PASSWORD", raising=False)
    get_settings.cache_clear()
    first = agents.ensure_demo_agent(url=crm)
    assert agents.ensure_demo_agent(url=crm) == first
    assert login(client, username="agent", password="demo-agent").status_code == 303
    env.setenv("CRM_DEMO_AGENT_PASSWORD", "a new demo password")
    get_settings.cache_clear()  # settings are read once per process
    assert agents.ensure_demo_agent(url=crm) == first
    client.cookies.clear()
    assert login(client, username="agent", password="demo-agent").status_code == 401
    assert login(client, username="agent", password="a new demo password").status_code == 303


def test_chat_link_signs_a_customer_in(client: TestClient) -> None:
    link = agents.chat_link("customer:12347")
    assert '"user": "customer:12347"' in client.get(link).text
    with pytest.raises(ValueError):
        agents.chat_link("root")


def test_the_chat_page_sets_no_cookie(client: TestClient) -> None:
    assert auth.SESSION_COOKIE not in client.get("/chat").cookies
