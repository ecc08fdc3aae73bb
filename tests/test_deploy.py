"""The deployment files: HAProxy's configuration and the replicas' endpoints.yml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.haproxy_config import render as haproxy_config
from scripts.replica_endpoints import render as replica_endpoints

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_haproxy_configuration_is_the_generated_one() -> None:
    assert (ROOT / "deploy" / "haproxy.cfg").read_text() == haproxy_config(
        [5006, 5007], [5056, 5057], stats_bind="127.0.0.1:8404")


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                          if Path("/usr/sbin/haproxy").is_file() else None)
    if haproxy is None:
        pytest.skip("HAProxy is not installed (make haproxy)")
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config([6001, 6002, 6003], [6101]))
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert config.read_text().count("server rasa") == 3


def test_replicas_share_postgresql_and_redis() -> None:
    text = replica_endpoints("postgresql+psycopg://crm:s%40cret@db.internal:5433/tracker",
                             "redis://:pw@cache:6380/2", "http://lb:5055/webhook")
    assert 'dialect: "postgresql"' in text and 'url: "db.internal"' in text
    assert "port: 5433" in text and 'db: "tracker"' in text and 'password: "s@cret"' in text
    assert 'type: "redis"' in text and "port: 6380" in text and "db: 2" in text
    assert 'url: "http://lb:5055/webhook"' in text
    with pytest.raises(ValueError, match="PostgreSQL"):
        replica_endpoints("sqlite:///var/tracker.db", "redis://x", "http://a")
    with pytest.raises(ValueError, match="Redis"):
        replica_endpoints("postgresql://x/y", "memcached://x", "http://a")


def test_sticky_routing_keeps_each_conversation_on_one_replica(tmp_path: Path) -> None:
    """``--sticky``: HAProxy hashes the JSON body's sender, so every message of one
    conversation reaches the same replica, and the conversations spread over both."""
    import asyncio

    import httpx

    from bench.stack import free_port
    from tests.support.fake_rasa import fake_rasa, port

    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).is_file():
        pytest.skip("HAProxy is not installed (make haproxy)")

    async def scenario() -> dict[str, set[str]]:
        counts: dict[str, int] = {}
        backends = [await fake_rasa("A", counts), await fake_rasa("B", counts)]
        front = free_port()
        config = tmp_path / "sticky.cfg"
        config.write_text(haproxy_config([port(b) for b in backends], [],
                                         rasa_bind=f"127.0.0.1:{front}", sticky=True))
        proc = subprocess.Popen([haproxy, "-db", "-f", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: dict[str, set[str]] = {}
        try:
            await asyncio.sleep(1.5)  # two health checks a second apart
            async with httpx.AsyncClient(timeout=10) as client:
                for turn in range(4):
                    for n in range(16):
                        sender = f"web:conversation-{n}"
                        r = await client.post(f"http://127.0.0.1:{front}/webhooks/rest/webhook",
                                              json={"sender": sender, "message": f"t{turn}"})
                        r.raise_for_status()
                        seen.setdefault(sender, set()).add(r.json()[0]["text"].split(":")[0])
        finally:
            proc.terminate()
            proc.wait(10)
            for b in backends:
                b.close()
        return seen

    seen = asyncio.run(scenario())
    assert len(seen) == 16
    assert all(len(replicas) == 1 for replicas in seen.values()), seen
    assert {next(iter(r)) for r in seen.values()} == {"A", "B"}
