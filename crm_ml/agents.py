"""The console's human agents in the CRM: accounts, passwords, presence.

* Passwords are stored as ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (``hashlib.scrypt``,
  16 MiB of memory per guess); placeholder agents created by a heartbeat (an agent
  known only by a signed ``agent:<n>`` identity) have the hash ``!`` and cannot
  sign in.
* :func:`authenticate` does the same work whether or not the username exists.
* Command-line entry points (``crm-ml agents add``, ``make demo``) call
  :func:`create_agent` and :func:`ensure_demo_agent`; ``crm-ml chat-link`` calls
  :func:`chat_link`.

Sessions, CSRF tokens and the count of wrong passwords belong to the console
(``console/auth.py``); this module only reads and writes the ``agents`` table.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_ml.audit import audit, utcnow
from crm_ml.config import get_settings
from crm_ml.db import models as m
from crm_ml.db import session_scope
from crm_ml.identity import parse_user, sign

__all__ = [
    "DEMO_AGENT_PASSWORD",
    "DEMO_AGENT_USERNAME",
    "MAX_USERNAME",
    "MIN_PASSWORD",
    "authenticate",
    "chat_link",
    "create_agent",
    "ensure_agent",
    "ensure_demo_agent",
    "get_agent",
    "hash_password",
    "heartbeat",
    "mark_agent_seen",
    "set_password",
    "verify_password",
]

logger = logging.getLogger(__name__)

SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_LEN = 2**14, 8, 1, 32
MIN_PASSWORD = 8
MAX_USERNAME = 64
DEMO_AGENT_USERNAME = "agent"
DEMO_AGENT_PASSWORD = "demo-agent"
PLACEHOLDER_HASH = "!"  # agents known only from a signed identity: no password sign-in


# --- passwords -------------------------------------------------------------------


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """Hash ``password`` with scrypt and a random salt."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=SCRYPT_LEN, maxmem=64 * 1024 * 1024)
    b64 = base64.urlsafe_b64encode
    return (f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
            f"{b64(salt).decode()}${b64(digest).decode()}")


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time; False for placeholders)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")


# --- accounts --------------------------------------------------------------------


def get_agent(*, session: Session, agent_id: int) -> m.Agent | None:
    """Agent ``agent_id``, or None."""
    return session.get(m.Agent, agent_id)


def _by_username(session: Session, username: str) -> m.Agent | None:
    return session.scalar(select(m.Agent).where(m.Agent.username == username))


def create_agent(username: str, name: str, password: str, *, url: str | None = None) -> int:
    """Create a console agent who signs in with ``username`` and ``password``.

    Returns:
        The agent's number (their identity is ``agent:<number>``).

    Raises:
        ValueError: the username is taken or invalid, or the password is too short.
    """
    username = username.strip().lower()
    if not username or len(username) > MAX_USERNAME or not username.replace("-", "").replace(
            "_", "").replace(".", "").isalnum():
        raise ValueError("the username takes letters, digits, '.', '-' and '_' (1-64)")
    _check_new_password(password)
    with session_scope(url) as s:
        if _by_username(s, username) is not None:
            raise ValueError(f"an agent called {username!r} exists already")
        # Explicit id: placeholder agents (API heartbeats) are inserted with their own
        # number, which PostgreSQL's sequence does not know about.
        next_id = (s.scalar(select(func.max(m.Agent.id))) or 0) + 1
        agent = m.Agent(id=next_id, username=username, name=name.strip() or username,
                        password_hash=hash_password(password))
        s.add(agent)
        s.flush()
        audit(session=s, actor="console", action="create_agent", entity="agents",
              entity_id=str(agent.id), details={"username": username})
        logger.info("created agent %s (agent:%d)", username, agent.id)
        return agent.id


def set_password(username: str, password: str, *, url: str | None = None) -> None:
    """Give an existing agent a new password (signs their old sessions out).

    Raises:
        ValueError: no such agent, or the password is too short.
    """
    _check_new_password(password)
    with session_scope(url) as s:
        agent = _by_username(s, username.strip().lower())
        if agent is None:
            raise ValueError(f"no agent called {username!r}")
        agent.password_hash = hash_password(password)
        audit(session=s, actor="console", action="set_password", entity="agents",
              entity_id=str(agent.id))


def ensure_demo_agent(password: str | None = None, *, url: str | None = None) -> int:
    """Make sure the demo agent ``agent`` exists and signs in with the demo password.

    The password is ``password``, else ``CRM_DEMO_AGENT_PASSWORD``, else ``demo-agent``.

    Returns:
        The demo agent's number.
    """
    password = password or get_settings().demo_agent_password or DEMO_AGENT_PASSWORD
    with session_scope(url) as s:
        agent = _by_username(s, DEMO_AGENT_USERNAME)
        if agent is not None:
            if not verify_password(password, agent.password_hash):
                _check_new_password(password)
                agent.password_hash = hash_password(password)
            return agent.id
    return create_agent(DEMO_AGENT_USERNAME, "Demo Agent", password, url=url)


def authenticate(username: str, password: str, *, url: str | None = None) -> m.Agent | None:
    """The agent with these credentials, or None (same work whether or not they exist).

    The username is compared trimmed and in lower case. The agent returned is
    detached from the session (its attributes stay readable). Wrong passwords are
    not counted here: the console keeps that count.
    """
    username = username.strip().lower()
    with session_scope(url) as s:
        agent = _by_username(s, username)
        stored = agent.password_hash if agent is not None else _DUMMY_HASH
        if not verify_password(password, stored) or agent is None:
            return None
        s.expunge(agent)
        return agent


# --- presence --------------------------------------------------------------------


def ensure_agent(*, session: Session, agent_id: int) -> m.Agent:
    """Return agent ``agent_id``, creating a placeholder (no console login) if missing."""
    agent = session.get(m.Agent, agent_id)
    if agent is None:
        agent = m.Agent(id=agent_id, username=f"agent{agent_id}", name=f"Agent {agent_id}",
                        password_hash=PLACEHOLDER_HASH)
        session.add(agent)
        session.flush()
    return agent


def mark_agent_seen(*, session: Session, agent_id: int, now: dt.datetime | None = None) -> None:
    """Record that an agent is at the console (heartbeat)."""
    session.execute(update(m.Agent).where(m.Agent.id == agent_id)
                    .values(last_seen_at=now or utcnow()))


def heartbeat(*, session: Session, agent_id: int, now: dt.datetime | None = None) -> None:
    """The agent is at the console: create their placeholder row if needed, mark them seen."""
    ensure_agent(session=session, agent_id=agent_id)
    mark_agent_seen(session=session, agent_id=agent_id, now=now)


# --- demo sign-ins ---------------------------------------------------------------


def chat_link(user: str) -> str:
    """The web chat's path signed in as ``user`` (e.g. ``customer:12347``), for demos.

    Raises:
        ValueError: no ``CRM_IDENTITY_SECRET``, or not a valid user id.
    """
    secret = get_settings().identity_secret
    if not secret:
        raise ValueError("CRM_IDENTITY_SECRET is not set: nobody can be signed in")
    if parse_user(user) is None:
        raise ValueError(f"{user!r} is not a user id like customer:12347")
    return f"/chat?user={user}&sig={sign(user, secret)}"
