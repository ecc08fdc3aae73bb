"""Console agents in the CRM: password hashes, accounts, heartbeats, no upward import."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from crm_ml import agents
from crm_ml.db import models as m
from crm_ml.db import session_scope

AGENT_PASSWORD = "correct horse battery"
CRM_ML = Path(__file__).resolve().parents[2] / "crm_ml"


@pytest.fixture
def crm(env: pytest.MonkeyPatch, sqlite_url: str) -> str:
    env.setenv("CRM_DATABASE_URL", sqlite_url)
    env.setenv("CRM_IDENTITY_SECRET", "agents-test-secret")
    return sqlite_url


@pytest.fixture
def agent_id(crm: str) -> int:
    return agents.create_agent("sam", "Sam Support", AGENT_PASSWORD, url=crm)


def test_password_hash_is_not_the_password(crm: str, agent_id: int) -> None:
    with session_scope(crm) as s:
        stored = s.scalar(select(m.Agent.password_hash).where(m.Agent.id == agent_id))
    assert stored != AGENT_PASSWORD
    assert AGENT_PASSWORD not in stored
    assert stored.startswith("scrypt$")
    assert agents.verify_password(AGENT_PASSWORD, stored)
    assert not agents.verify_password("correct horse battery!", stored)
    assert agents.hash_password(AGENT_PASSWORD) != agents.hash_password(AGENT_PASSWORD)  # salted
    assert not agents.verify_password("anything", "!")  # placeholder agents cannot sign in


def test_create_agent_checks_its_input(crm: str, agent_id: int) -> None:
    with pytest.raises(ValueError, match="exists"):
        agents.create_agent("SAM", "Other Sam", "long enough pw", url=crm)
    with pytest.raises(ValueError, match="at least"):
        agents.create_agent("kim", "Kim", "short", url=crm)
    with pytest.raises(ValueError, match="username"):
        agents.create_agent("kim smith", "Kim", "long enough pw", url=crm)
    assert agents.create_agent("kim", "Kim", "long enough pw", url=crm) == agent_id + 1


def test_authenticate_and_set_password(crm: str, agent_id: int) -> None:
    agent = agents.authenticate(" SAM ", AGENT_PASSWORD, url=crm)
    assert agent is not None and (agent.id, agent.name) == (agent_id, "Sam Support")
    assert agents.authenticate("sam", "wrong password", url=crm) is None
    assert agents.authenticate("nobody", AGENT_PASSWORD, url=crm) is None
    agents.set_password("sam", "another good password", url=crm)
    assert agents.authenticate("sam", AGENT_PASSWORD, url=crm) is None
    assert agents.authenticate("sam", "another good password", url=crm) is not None
    with pytest.raises(ValueError, match="no agent"):
        agents.set_password("nobody", "another good password", url=crm)
    with session_scope(crm) as s:
        actions = list(s.scalars(select(m.AuditLog.action).order_by(m.AuditLog.id)))
    assert actions == ["create_agent", "set_password"]


def test_a_heartbeat_creates_a_placeholder_that_cannot_sign_in(crm: str) -> None:
    seen = dt.datetime(2026, 11, 23, 12, 0)
    with session_scope(crm) as s:
        agents.heartbeat(session=s, agent_id=7, now=seen)
    with session_scope(crm) as s:
        agent = agents.get_agent(session=s, agent_id=7)
        assert agent is not None
        assert (agent.username, agent.password_hash, agent.last_seen_at) == ("agent7", "!", seen)
        assert agents.get_agent(session=s, agent_id=8) is None
    assert agents.authenticate("agent7", "!", url=crm) is None


def test_chat_link(crm: str) -> None:
    assert agents.chat_link("customer:12347").startswith("/chat?user=customer:12347&sig=")
    with pytest.raises(ValueError, match="user id"):
        agents.chat_link("root")


def test_no_crm_ml_module_imports_the_console() -> None:
    """crm_ml sits below the console: not even the command-line tool imports it."""
    offenders = []
    for path in sorted(CRM_ML.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "console" or n.startswith("console.") for n in names):
                offenders.append(f"{path.relative_to(CRM_ML.parent)}:{node.lineno}")
    assert offenders == []
