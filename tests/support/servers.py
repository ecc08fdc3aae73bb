"""Start the real Rasa server and action server on loopback for end-to-end tests.

The process helpers (free ports, starting Rasa and the action server, waiting
for health, stopping) live in :mod:`bench.stack`, shared with ``make bench``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.stack import (
    APP_PY,
    ROOT,
    endpoints_yaml,
    free_port,
    launch,
    rasa_command,
    start_actions,
    stop,
    wait_backends_up,
    wait_http,
)
from crm_ml.identity import sign

__all__ = ["API_TOKEN", "RASA_MODEL", "ROOT", "Stack", "answers", "assistant", "crm_snapshot",
           "eventually", "free_port", "start_actions", "stop", "wait_backends_up",
           "wait_http"]

RASA_MODEL = ROOT / "models" / "rasa" / "crm.tar.gz"
# The Rasa HTTP API (/conversations/...) answers only with ?token=API_TOKEN.
API_TOKEN = "e2e-rasa-api-token"


def answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a service (RabbitMQ, Redis...) accepts connections on ``host:port``."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def crm_snapshot(folder: Path) -> Path:
    """A consistent copy of the loaded CRM (var/crm.db) as ``folder/crm.db``, for a stack
    whose tests write: tests never write to var/."""
    import sqlite3

    copy = folder / "crm.db"
    with sqlite3.connect(ROOT / "var" / "crm.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    return copy


def eventually(check, timeout: float = 15.0, interval: float = 0.1):  # noqa: ANN001, ANN201
    """Call ``check`` until it returns something truthy or ``timeout`` passes; its last result.

    The CRM event broker writes interactions from a queue, a few tens of
    milliseconds after the reply: readers of that table wait with this.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)


@dataclass
class Stack:
    """A running assistant: its REST URL and the processes behind it."""

    rasa_url: str
    actions_url: str
    workdir: Path
    rasa: subprocess.Popen
    actions: subprocess.Popen
    console_url: str = ""
    console: subprocess.Popen | None = None
    env: dict[str, str] | None = None
    rasa_cmd: list[str] | None = None

    def restart_rasa(self) -> None:
        """Stop the Rasa server and start it again on the same port (same tracker store)."""
        stop(self.rasa)
        log = self.workdir / "rasa-restarted.log"
        self.rasa = launch(self.rasa_cmd or [], log, self.env or {})
        wait_http(f"{self.rasa_url}/", self.rasa, log, timeout=240)

    def agent(self, method: str, path: str, agent: str = "agent:1", **kwargs) -> httpx.Response:
        """Call the console API signed as ``agent``."""
        secret = (self.env or {}).get("CRM_IDENTITY_SECRET", "")
        headers = {"X-CRM-User": agent, "X-CRM-Sig": sign(agent, secret)}
        return httpx.request(method, f"{self.console_url}{path}", headers=headers,
                             timeout=30, **kwargs)

    def say(self, sender: str, text: str, metadata: dict | None = None) -> list[dict]:
        body = {"sender": sender, "message": text}
        if metadata is not None:
            body["metadata"] = metadata
        r = httpx.post(f"{self.rasa_url}/webhooks/rest/webhook", json=body, timeout=60)
        r.raise_for_status()
        return r.json()


@contextmanager
def assistant(workdir: Path, crm_url: str, extra_env: dict[str, str] | None = None,
              model: Path = RASA_MODEL, console: bool = False,
              credentials: Path | None = None) -> Iterator[Stack]:
    """Run Rasa and the action server against the CRM at ``crm_url``."""
    if not model.is_file():
        raise FileNotFoundError(f"{model} missing: run `make train` first")
    rasa_port, actions_port = free_port(), free_port()
    # The action server reaches the stack's own tracker store (GDPR erasure), never var/'s.
    env = {**os.environ, "CRM_DATABASE_URL": crm_url, "RASA_TELEMETRY_ENABLED": "false",
           "CRM_TRACKER_DB_URL": f"sqlite:///{workdir / 'tracker.db'}", **(extra_env or {})}
    endpoints = workdir / "endpoints.yml"
    endpoints.write_text(endpoints_yaml(f"http://127.0.0.1:{actions_port}/webhook",
                                        tracker="sqlite", workdir=workdir, broker=True))
    actions_log, rasa_log = workdir / "actions.log", workdir / "rasa.log"
    actions = start_actions(actions_port, env, actions_log)
    rasa_cmd = rasa_command(model, endpoints, credentials or ROOT / "credentials.yml",
                            rasa_port, auth_token=API_TOKEN)
    rasa = launch(rasa_cmd, rasa_log, env)
    stack = Stack(f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{actions_port}",
                  workdir, rasa, actions, env=env, rasa_cmd=rasa_cmd)
    try:
        if console:
            console_port = free_port()
            console_log = workdir / "console.log"
            stack.console = launch(
                [str(APP_PY), "-m", "uvicorn", "console.app:app", "--ws", "none",
                 "--host", "127.0.0.1", "--port", str(console_port)],
                console_log, {**env, "CRM_RASA_URL": stack.rasa_url})
            stack.console_url = f"http://127.0.0.1:{console_port}"
            wait_http(f"{stack.console_url}/health", stack.console, console_log, timeout=60)
        wait_http(f"http://127.0.0.1:{rasa_port}/", rasa, rasa_log, timeout=240)
        yield stack
    finally:
        # Tests may restart a process: stop whatever the stack holds now.
        stop(stack.rasa)
        stop(stack.actions)
        if stack.console is not None:
            stop(stack.console)
