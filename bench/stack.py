"""Start and stop the processes a benchmark or a test drives: Rasa, action servers, HAProxy.

The one home of the process helpers: ``make bench`` uses them through
:class:`Processes`, and the end-to-end and trust tests through
``tests/support/servers.py`` (standard library and httpx only, no pytest).

Every process listens on a free loopback port and logs to a file in a work
directory. The Rasa server is started the way ``make run``
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


def haproxy_servers(stats_url: str, backend: str = "rasa_replicas") -> dict[str, dict[str, str]]:
    """Each server of ``backend`` with its row of HAProxy's statistics (CSV): ``status``
    (UP, DOWN, "UP 1/2" while changing), ``check_status`` (L7OK when the last check
    passed), ``stot`` (requests it took)."""
    import csv

    text = httpx.get(f"{stats_url};csv", timeout=10).text.lstrip("# ")
    return {row["svname"]: row for row in csv.DictReader(text.splitlines())
            if row["pxname"] == backend and row["svname"] not in {"FRONTEND", "BACKEND"}}


def wait_backends_up(stats_url: str, proc: subprocess.Popen, log: Path,
                     backend: str = "rasa_replicas", timeout: float = 60) -> None:
    """Wait until HAProxy's health checks have every server of ``backend`` up. A server
    counts as down from HAProxy's start until two checks a second apart pass after it
    listens, and a request that finds no server up is answered 503: a test or a
    benchmark that starts its clients as soon as the replicas listen would meet that."""
    deadline = time.monotonic() + timeout
    servers: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"HAProxy exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            servers = haproxy_servers(stats_url, backend)
        except httpx.HTTPError:
            servers = {}
        if servers and all(row["status"] == "UP" and row["check_status"] == "L7OK"
                           for row in servers.values()):
            return
        time.sleep(0.25)
    states = {name: (row["status"], row["check_status"]) for name, row in servers.items()}
    raise TimeoutError(f"HAProxy's {backend} not all up after {timeout:.0f} s: {states}")


def stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """Terminate ``proc`` (a child started here), killing it if it hangs past ``timeout`` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
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


def launch(cmd: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT
           ) -> subprocess.Popen:
    """Start ``cmd`` in ``cwd`` with its output (stdout and stderr) in ``log``."""
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def actions_command(port: int) -> list[str]:
    """The action server (rasa-sdk in the app env) on ``port``."""
    return [str(APP_PY), "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)]


def rasa_command(model: Path, endpoints: Path, credentials: Path, port: int,
                 auth_token: str | None = None) -> list[str]:
    """``rasa run`` (bot env) on loopback ``port`` with the HTTP API enabled.

    Args:
        model: The trained Rasa model.
        endpoints: The ``endpoints.yml`` file.
        credentials: The ``credentials.yml`` file (the channels).
        port: The port to listen on.
        auth_token: The token the HTTP API asks for (``?token=``); none by default.
    """
    cmd = [str(BOT_RASA), "run", "--model", str(model), "--endpoints", str(endpoints),
           "--credentials", str(credentials), "--interface", "127.0.0.1",
           "--port", str(port), "--enable-api"]
    if auth_token:
        cmd += ["--auth-token", auth_token]
    return cmd


def start_actions(port: int, env: dict[str, str], log: Path, timeout: float = 60
                  ) -> subprocess.Popen:
    """Start an action server on ``port`` and wait until its ``/health`` answers."""
    proc = launch(actions_command(port), log, env)
    wait_http(f"http://127.0.0.1:{port}/health", proc, log, timeout=timeout)
    return proc


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
    stats_url: str | None = None  # HAProxy's statistics page

    def peak_rss_mb(self) -> float | None:
        """Peak resident memory of the process in MiB (None once it is gone)."""
        return peak_rss_mb(self.proc.pid)


@dataclass
class Processes:
    """Everything started for one benchmark; :meth:`stop_all` ends it all."""

    workdir: Path
    env: dict[str, str]
    started: list[Server] = field(default_factory=list)

    def _start(self, name: str, cmd: list[str], port: int,
               extra_env: dict[str, str] | None = None, cwd: Path = ROOT) -> Server:
        log = self.workdir / f"{name}.log"
        proc = launch(cmd, log, {**self.env, **(extra_env or {})}, cwd)
        server = Server(name, f"http://127.0.0.1:{port}", proc, log)
        self.started.append(server)
        return server

    def actions(self, name: str, extra_env: dict[str, str] | None = None) -> Server:
        """Start an action server (rasa-sdk, app env) and wait for it."""
        port = free_port()
        server = self._start(name, actions_command(port), port, extra_env)
        wait_http(f"{server.url}/health", server.proc, server.log, timeout=120)
        return server

    def rasa(self, name: str, model: Path, endpoints: str, wait: bool = True,
             extra_env: dict[str, str] | None = None, stock_channels: bool = False,
             cwd: Path = ROOT) -> Server:
        """Start ``rasa run`` with ``model`` and the given endpoints file text.

        Args:
            name: The server's name (its log is ``<workdir>/<name>.log``).
            model: The trained Rasa model.
            endpoints: The text of its ``endpoints.yml``.
            wait: Whether to wait until the model answers ``/model/parse``.
            extra_env: Variables on top of :attr:`env`.
            stock_channels: Rasa's own REST channel instead of the project's
                ``credentials.yml`` (the baseline runs stock parts where it can).
            cwd: The source tree it runs in; its ``credentials.yml`` is used
                (another checkout for an A/B, with its code on ``PYTHONPATH``).
        """
        port = free_port()
        path = self.workdir / f"{name}.endpoints.yml"
        path.write_text(endpoints)
        credentials = cwd / "credentials.yml"
        if stock_channels:
            credentials = self.workdir / f"{name}.credentials.yml"
            credentials.write_text("rest:\n")
        server = self._start(name, rasa_command(model, path, credentials, port), port,
                             extra_env, cwd)
        if wait:
            self.wait(server)
        return server

    def wait(self, server: Server) -> None:
        """Wait until ``server`` (a Rasa server) answers and its model parses."""
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

    def haproxy(self, name: str, backends: list[Server], sticky: bool = False) -> Server:
        """Start HAProxy (Debian's, ``make haproxy``) in front of the Rasa ``backends``,
        configured as ``make run`` configures it (scripts/haproxy_config.py); its
        statistics page is at ``server.stats_url``."""
        import shutil

        from scripts.haproxy_config import render

        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        port, stats = free_port(), free_port()
        config = self.workdir / f"{name}.cfg"
        config.write_text(render([int(b.url.rsplit(":", 1)[1]) for b in backends], [],
                                 rasa_bind=f"127.0.0.1:{port}",
                                 stats_bind=f"127.0.0.1:{stats}", sticky=sticky))
        server = self._start(name, [binary, "-db", "-f", str(config)], port)
        server.stats_url = f"http://127.0.0.1:{stats}/"
        wait_backends_up(server.stats_url, server.proc, server.log)
        return server

    def stop(self, server: Server) -> None:
        """Stop one server started here."""
        stop(server.proc)
        if server in self.started:
            self.started.remove(server)

    def stop_all(self) -> None:
        """Stop every server still running, the last started first."""
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
