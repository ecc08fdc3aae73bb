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
