"""Console sign-in: signed session cookies, CSRF tokens, and the count of wrong passwords.

Agents' accounts and password hashes live in the CRM (:mod:`crm_ml.agents`);
who is signed in is decided in :mod:`console.dependencies`. Here:

* The session is a cookie signed with itsdangerous under ``CRM_CONSOLE_SECRET``,
  or, when that is unset, a key derived from ``CRM_IDENTITY_SECRET``. Without
  either secret nobody can sign in: the console refuses to start sessions.
* A session remembers the agent and a fingerprint of their password hash, so a
  password change signs every old session out.
* Every form carries the session's CSRF token; :func:`check_csrf` compares it.
* Five wrong passwords for a username lock it for 15 minutes; the counter
  (:class:`FailedSignIns`) keeps a bounded number of names, so a flood of made-up
  usernames cannot exhaust the memory, nor unlock a real one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from crm_ml import agents
from crm_ml.agents import MAX_USERNAME
from crm_ml.config import get_settings
from crm_ml.db import models as m

if TYPE_CHECKING:
    from console.dependencies import Viewer

__all__ = [
    "FAILURE_WINDOW",
    "MAX_FAILURES",
    "MAX_TRACKED_NAMES",
    "SESSION_COOKIE",
    "SESSION_MAX_AGE",
    "ConsoleSession",
    "FailedSignIns",
    "Forbidden",
    "LoginRequired",
    "SessionMiddleware",
    "authenticate",
    "check_csrf",
    "get_session",
    "password_fingerprint",
    "session_secret",
    "too_many_failures",
]

logger = logging.getLogger(__name__)

# --- kept for tests/e2e and tests/trust until their imports move to crm_ml.agents ---
from crm_ml.agents import create_agent, set_password  # noqa: E402,F401  (re-export)

SESSION_COOKIE = "crm_console"
SESSION_MAX_AGE = 12 * 3600
MAX_FAILURES, FAILURE_WINDOW = 5, 15 * 60
MAX_TRACKED_NAMES = 10_000  # usernames with recent wrong passwords kept in memory (each map)


class LoginRequired(Exception):
    """The page needs a signed-in agent (the app redirects to /login)."""


class Forbidden(Exception):
    """Signed in, but not allowed here (the app answers 403)."""

    def __init__(self, message: str = "This page is for support agents only.") -> None:
        super().__init__(message)
        self.message = message


# --- failed sign-ins ------------------------------------------------------------


class FailedSignIns:
    """Wrong passwords per username (per process), in bounded memory.

    A name with ``limit`` wrong passwords within ``window`` seconds is locked for
    ``window`` seconds from the last of them. Names are kept in two maps, each in
    least-recently-failed order and each at most ``max_names`` long, so a flood of
    made-up usernames costs a fixed amount of memory:

    * names still under the limit: the flood evicts the oldest of these first, so
      it can at worst forget a few wrong guesses at a real name;
    * locked names: only names that collected ``limit`` wrong passwords (each an
      scrypt computation for the attacker's request) enter here, so the flood of
      one-off names never unlocks a real one.

    Entries older than ``window`` are dropped as new failures come in.
    """

    def __init__(self, *, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW,
                 max_names: int = MAX_TRACKED_NAMES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_names, self.clock = limit, window, max_names, clock
        self._counting: OrderedDict[str, list[float]] = OrderedDict()
        self._locked: OrderedDict[str, float] = OrderedDict()  # name -> unlock time
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str) -> str:
        return username[:MAX_USERNAME]  # no agent's name is longer: bounded keys

    def is_locked(self, username: str) -> bool:
        """Whether ``username`` is locked out now (never adds an entry)."""
        key, now = self._key(username), self.clock()
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return False
            if now < until:
                return True
            del self._locked[key]
            return False

    def record(self, username: str) -> None:
        """Count one wrong password for ``username``."""
        key, now = self._key(username), self.clock()
        with self._lock:
            self._expire(now)
            if key in self._locked:
                return  # already locked: the lock runs from the failure that set it
            times = [t for t in self._counting.pop(key, ()) if now - t < self.window]
            times.append(now)
            if len(times) >= self.limit:
                self._locked[key] = now + self.window
                while len(self._locked) > self.max_names:
                    self._locked.popitem(last=False)
                logger.warning("console sign-in locked for %d s after %d wrong passwords",
                               self.window, self.limit)
                return
            self._counting[key] = times[-self.limit:]
            while len(self._counting) > self.max_names:
                self._counting.popitem(last=False)

    def reset(self, username: str) -> None:
        """Forget ``username``'s failures (after a right password)."""
        key = self._key(username)
        with self._lock:
            self._counting.pop(key, None)
            self._locked.pop(key, None)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._counting.clear()
            self._locked.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._counting) + len(self._locked)

    def _expire(self, now: float) -> None:
        # Both maps are in order of the last failure, so stale entries sit in front.
        while self._counting:
            key, times = next(iter(self._counting.items()))
            if now - times[-1] < self.window:
                break
            del self._counting[key]
        while self._locked:
            key, until = next(iter(self._locked.items()))
            if now < until:
                break
            del self._locked[key]


_failures = FailedSignIns()


def too_many_failures(username: str) -> bool:
    """Whether ``username`` had too many wrong passwords lately (per process)."""
    return _failures.is_locked(username)


def _record_failure(username: str) -> None:
    _failures.record(username)


def authenticate(username: str, password: str, *, url: str | None = None) -> m.Agent | None:
    """The agent with these credentials, or None; a wrong password counts against the name.

    Raises:
        CRMUnavailable: the CRM could not be asked (nothing is counted).
    """
    username = username.strip().lower()
    agent = agents.authenticate(username, password, url=url)
    if agent is None:
        _record_failure(username)
        return None
    _failures.reset(username)
    return agent


# --- sessions --------------------------------------------------------------------


def session_secret() -> str | None:
    """The key that signs console sessions, or None when no secret is configured."""
    settings = get_settings()
    if settings.console_secret:
        return settings.console_secret
    if settings.identity_secret:
        return hmac.new(settings.identity_secret.encode(), b"crm-console-session",
                        hashlib.sha256).hexdigest()
    return None


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="crm-console-session")


def password_fingerprint(password_hash: str, secret: str) -> str:
    """A short keyed digest of a password hash: changes when the password does."""
    return hmac.new(secret.encode(), password_hash.encode(), hashlib.sha256).hexdigest()[:24]


class ConsoleSession:
    """The signed session of one browser: a small dict, saved only when changed."""

    def __init__(self, data: dict[str, Any], secret: str | None) -> None:
        self.data = data
        self.secret = secret
        self.modified = False

    @classmethod
    def load(cls, cookie: str | None, secret: str | None) -> ConsoleSession:
        data: dict[str, Any] = {}
        if cookie and secret:
            try:
                loaded = _serializer(secret).loads(cookie, max_age=SESSION_MAX_AGE)
                data = loaded if isinstance(loaded, dict) else {}
            except BadSignature:
                data = {}
        return cls(data, secret)

    def dump(self) -> str:
        assert self.secret
        return _serializer(self.secret).dumps(self.data)

    def csrf_token(self) -> str:
        """This session's CSRF token (created on first use)."""
        token = self.data.get("csrf")
        if not isinstance(token, str) or not token:
            token = secrets.token_urlsafe(24)
            self.data["csrf"] = token
            self.modified = True
        return token

    def start(self, user: str, fingerprint: str) -> None:
        """Sign in: a fresh session (new CSRF token) for ``user``."""
        self.data = {"user": user, "pw": fingerprint, "csrf": secrets.token_urlsafe(24)}
        self.modified = True

    def clear(self) -> None:
        self.data = {}
        self.modified = True


class SessionMiddleware(BaseHTTPMiddleware):
    """Loads the console session into ``request.state.session``; saves it if changed."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        secret = session_secret()
        session = ConsoleSession.load(request.cookies.get(SESSION_COOKIE), secret)
        request.state.session = session
        response = await call_next(request)
        if session.modified and secret:
            if session.data:
                response.set_cookie(SESSION_COOKIE, session.dump(), max_age=SESSION_MAX_AGE,
                                    httponly=True, samesite="lax",
                                    secure=request.url.scheme == "https")
            else:
                response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
        return response


def get_session(request: Request) -> ConsoleSession:
    """The request's console session (empty when the middleware is not installed)."""
    session = getattr(request.state, "session", None)
    if session is None:
        session = ConsoleSession({}, None)
        request.state.session = session
    return session


def check_csrf(request: Request, token: str | None, viewer: Viewer | None = None) -> None:
    """Refuse a form whose CSRF token is not this session's.

    Requests signed with headers rather than the cookie need no token.

    Raises:
        Forbidden: missing or wrong token.
    """
    if viewer is not None and not viewer.via_session:
        return
    expected = get_session(request).data.get("csrf")
    # Bytes: compare_digest raises TypeError on a non-ASCII str (a 500 for "csrf_token=é").
    if not token or not isinstance(expected, str) or not hmac.compare_digest(
            token.encode("utf-8", "replace"), expected.encode()):
        raise Forbidden("This form has expired or did not come from the console. "
                        "Reload the page and try again.")
