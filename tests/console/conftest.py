"""Console fixtures: a migrated SQLite CRM, the console app on it, signed-in agents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from console import auth
from crm_ml import agents
from crm_ml.config import get_settings
from crm_ml.identity import sign

SECRET = "console-test-secret"
AGENT_PASSWORD = "correct horse battery"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def signed(user: str) -> dict[str, str]:
    """Headers that sign a request as ``user``."""
    return {"X-CRM-User": user, "X-CRM-Sig": sign(user, SECRET)}


@pytest.fixture
def crm(env: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> str:
    """A migrated SQLite CRM, configured as the console's database (no .env read)."""
    env.chdir(tmp_path)
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_IDENTITY_SECRET", SECRET)
    env.delenv("CRM_CONSOLE_SECRET", raising=False)
    env.setenv("CRM_RASA_URL", "http://127.0.0.1:5999")
    get_settings.cache_clear()
    auth._failures.clear()
    return sqlite_url


@pytest.fixture
def handoff_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What the API and the pages would post to the Rasa server's handoff channel."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake(path: str, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append((path, payload))
        return {"status": "pushed"}

    monkeypatch.setattr("console.api.rasa_handoff", fake)
    monkeypatch.setattr("console.pages.rasa_handoff", fake)
    return calls


@pytest.fixture
def client(crm: str) -> Iterator[TestClient]:
    from console.app import create_app

    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


@pytest.fixture
def agent_id(crm: str) -> int:
    return agents.create_agent("sam", "Sam Support", AGENT_PASSWORD, url=crm)


def login(client: TestClient, username: str = "sam", password: str = AGENT_PASSWORD,
          next: str = "/") -> object:
    page = client.get("/login")
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(page.text), "next": next})


@pytest.fixture
def agent(client: TestClient, agent_id: int) -> TestClient:
    """The client, signed in as agent ``sam``."""
    r = login(client)
    assert r.status_code == 303, r.text
    return client
