"""Start and stop the processes a benchmark drives: Rasa servers, action servers, the proxy.

Every process listens on a free loopback port and logs to a file in the
benchmark's work directory. The Rasa server is started the way ``make run``
starts it (``rasa run`` with the project's ``credentials.yml``), with an
``endpoints.yml`` written here: the production one (SQL tracker store in a
SQLite file, the CRM event broker) or the scaling one (tracker store on
PostgreSQL, Redis lock store).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
APP_PY = ROOT / ".venv" / "bin" / "python"
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
BOT_RASA = ROOT / ".venv-bot" / "bin" / "rasa"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    """Wait until ``url`` answers 200; fail early (with the log's tail) if ``proc`` died."""
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
    raise TimeoutError(f"{url} not up after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate ``proc`` (this benchmark's own child), killing it if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (``VmHWM``) of a live process in MiB, from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def endpoints_yaml(actions_url: str, *, tracker: str, workdir: Path, broker: bool = True,
                   postgres_db: str = "", redis_prefix: str = "", stock_store: bool = False
                   ) -> str:
    """An ``endpoints.yml`` for one Rasa process.

    Args:
        actions_url: The action server's webhook URL.
        tracker: ``sqlite`` (the production default, a file in ``workdir``),
            ``memory``, or ``postgres`` (database ``postgres_db`` on 127.0.0.1:5432,
            with a Redis lock store on 127.0.0.1:6379 under ``redis_prefix``).
        workdir: Where the SQLite tracker file goes.
        broker: Whether the CRM event broker stores every message (production: yes).
        stock_store: Rasa's own ``SQLTrackerStore`` instead of ours (the baseline's).
    """
    out = [f'action_endpoint:\n  url: "{actions_url}"']
    store = "SQL" if stock_store else "bot.tracker_store.CRMTrackerStore"
    if tracker == "sqlite":
        out.append(f'tracker_store:\n  type: {store}\n  dialect: "sqlite"\n'
                   f'  db: "{workdir / "tracker.db"}"')
    elif tracker == "postgres":
        out.append(f'tracker_store:\n  type: {store}\n  dialect: "postgresql"\n'
                   f'  url: "127.0.0.1"\n  port: 5432\n  username: "postgres"\n'
                   f'  db: "{postgres_db}"')
        out.append(f'lock_store:\n  type: "redis"\n  url: "127.0.0.1"\n  port: 6379\n'
                   f'  db: 0\n  key_prefix: "{redis_prefix}"')
    elif tracker != "memory":
        raise ValueError(f"unknown tracker store {tracker!r}")
    if broker:
        out.append("event_broker:\n  type: bot.broker.CRMEventBroker")
    return "\n".join(out) + "\n"


@dataclass
class Server:
    """One running process."""

    name: str
    url: str
    proc: subprocess.Popen
    log: Path

    def peak_rss_mb(self) -> float | None:
        return peak_rss_mb(self.proc.pid)


@dataclass
class Processes:
    """Everything started for one benchmark; :meth:`stop_all` ends it all."""

    workdir: Path
    env: dict[str, str]
    started: list[Server] = field(default_factory=list)

    def _popen(self, name: str, cmd: list[str], extra_env: dict[str, str] | None = None
               ) -> tuple[subprocess.Popen, Path]:
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})},
                                stdout=log.open("w"), stderr=subprocess.STDOUT)
        return proc, log

    def actions(self, name: str, extra_env: dict[str, str] | None = None) -> Server:
        """Start an action server (rasa-sdk, app env) and wait for it."""
        port = free_port()
        proc, log = self._popen(name, [str(APP_PY), "-m", "rasa_sdk", "--actions", "actions",
                                       "--port", str(port)], extra_env)
        server = Server(name, f"http://127.0.0.1:{port}", proc, log)
        self.started.append(server)
        wait_http(f"{server.url}/health", proc, log, timeout=120)
        return server

    def rasa(self, name: str, model: Path, endpoints: str, wait: bool = True,
             extra_env: dict[str, str] | None = None, stock_channels: bool = False
             ) -> Server:
        """Start ``rasa run`` with ``model`` and the given endpoints file text.

        ``stock_channels``: Rasa's own REST channel instead of the project's
        ``credentials.yml`` (the baseline runs stock parts where it can).
        """
        port = free_port()
        path = self.workdir / f"{name}.endpoints.yml"
        path.write_text(endpoints)
        credentials = ROOT / "credentials.yml"
        if stock_channels:
            credentials = self.workdir / f"{name}.credentials.yml"
            credentials.write_text("rest:\n")
        proc, log = self._popen(name, [
            str(BOT_RASA), "run", "--model", str(model), "--endpoints", str(path),
            "--credentials", str(credentials), "--interface", "127.0.0.1",
            "--port", str(port), "--enable-api"], extra_env)
        server = Server(name, f"http://127.0.0.1:{port}", proc, log)
        self.started.append(server)
        if wait:
            self.wait(server)
        return server

    def wait(self, server: Server) -> None:
        wait_http(f"{server.url}/", server.proc, server.log, timeout=600)
        # ``/`` answers before the model is in place on a slow start; the parse
        # endpoint only works once it is.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"{server.url}/model/parse", json={"text": "hello"}, timeout=30)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"{server.name}: model not loaded")

    def proxy(self, name: str, backends: list[Server]) -> Server:
        """Start the sticky proxy in front of ``backends``."""
        port = free_port()
        cmd = [str(APP_PY), "-m", "bench.proxy", "--port", str(port)]
        for b in backends:
            cmd += ["--backend", b.url.removeprefix("http://")]
        proc, log = self._popen(name, cmd)
        server = Server(name, f"http://127.0.0.1:{port}", proc, log)
        self.started.append(server)
        wait_http(f"{server.url}/", proc, log, timeout=60)
        return server

    def stop(self, server: Server) -> None:
        stop(server.proc)
        if server in self.started:
            self.started.remove(server)

    def stop_all(self) -> None:
        for server in reversed(list(self.started)):
            self.stop(server)


def server_env(crm_url: str, secret: str, models_dir: Path | None) -> dict[str, str]:
    """The environment of every server: the benchmark's CRM, secret and models."""
    env = {**os.environ, "CRM_DATABASE_URL": crm_url, "CRM_IDENTITY_SECRET": secret,
           "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONUNBUFFERED": "1"}
    if models_dir is not None:
        env["CRM_MODELS_DIR"] = str(models_dir)
    return env
