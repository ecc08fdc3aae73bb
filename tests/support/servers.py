"""Start the real Rasa server and action server on loopback for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from crm_ml.identity import sign

ROOT = Path(__file__).resolve().parents[2]
APP_PY = ROOT / ".venv" / "bin" / "python"
BOT_RASA = ROOT / ".venv-bot" / "bin" / "rasa"
RASA_MODEL = ROOT / "models" / "rasa" / "crm.tar.gz"
# The Rasa HTTP API (/conversations/...) answers only with ?token=API_TOKEN.
API_TOKEN = "e2e-rasa-api-token"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    """Wait until ``url`` answers 200, failing early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not up after {timeout} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        self.rasa = subprocess.Popen(self.rasa_cmd or [], cwd=ROOT, env=self.env,
                                     stdout=log.open("w"), stderr=subprocess.STDOUT)
        wait_http(f"{self.rasa_url}/", self.rasa, log)

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


def start_actions(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(APP_PY), "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    wait_http(f"http://127.0.0.1:{port}/health", proc, log, timeout=60)
    return proc


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
    endpoints.write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{actions_port}/webhook"\n'
        f'tracker_store:\n  type: bot.tracker_store.CRMTrackerStore\n  dialect: "sqlite"\n'
        f'  db: "{workdir / "tracker.db"}"\n'
        f'event_broker:\n  type: bot.broker.CRMEventBroker\n'
    )
    actions_log, rasa_log = workdir / "actions.log", workdir / "rasa.log"
    actions = start_actions(actions_port, env, actions_log)
    rasa_cmd = [str(BOT_RASA), "run", "--model", str(model), "--endpoints", str(endpoints),
                "--credentials", str(credentials or ROOT / "credentials.yml"),
                "--interface", "127.0.0.1", "--port", str(rasa_port), "--enable-api",
                "--auth-token", API_TOKEN]
    rasa = subprocess.Popen(rasa_cmd, cwd=ROOT, env=env, stdout=rasa_log.open("w"),
                            stderr=subprocess.STDOUT)
    stack = Stack(f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{actions_port}",
                  workdir, rasa, actions, env=env, rasa_cmd=rasa_cmd)
    try:
        if console:
            console_port = free_port()
            console_log = workdir / "console.log"
            stack.console = subprocess.Popen(
                [str(APP_PY), "-m", "uvicorn", "console.app:app", "--ws", "none",
                 "--host", "127.0.0.1", "--port", str(console_port)],
                cwd=ROOT, env={**env, "CRM_RASA_URL": stack.rasa_url},
                stdout=console_log.open("w"), stderr=subprocess.STDOUT)
            stack.console_url = f"http://127.0.0.1:{console_port}"
            wait_http(f"{stack.console_url}/health", stack.console, console_log, timeout=60)
        wait_http(f"http://127.0.0.1:{rasa_port}/", rasa, rasa_log)
        yield stack
    finally:
        # Tests may restart a process: stop whatever the stack holds now.
        stop(stack.rasa)
        stop(stack.actions)
        if stack.console is not None:
            stop(stack.console)
