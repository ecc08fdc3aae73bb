"""Settings: the only module that reads the environment.

Values come from environment variables, then from an optional ``.env`` file in
the working directory, then from the defaults below. Standard library only, so
that the bot env can import it too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "PROJECT_ROOT",
    "Settings",
    "get_settings",
]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _read_dotenv(path: Path) -> dict[str, str]:
    """Parse a minimal ``KEY=VALUE`` file, ignoring blanks and comments."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Settings:
    """Typed settings of the whole project.

    Attributes:
        database_url: SQLAlchemy URL of the CRM (SQLite file by default).
        datasets_dir: Folder holding the public datasets (see MANIFEST.md).
        models_dir: Folder of trained artifacts and their metadata.
        identity_secret: HMAC secret for signed identities (``CRM_IDENTITY_SECRET``).
        telegram_token: Bot token for Telegram, empty when unused.
        telegram_base_url: Bot API base URL in python-telegram-bot's form.
        allow_download: Whether the loader may download missing datasets.
        support_hours: When human agents work, e.g. ``Mon-Fri 08:00-20:00`` or ``always``.
        timezone: IANA time zone of the support hours.
        rasa_url: Where the console reaches the Rasa server.
        console_secret: Key that signs console sessions.
        tracker_db_url: Rasa's SQL tracker store (for GDPR export and erasure).
        console_url: Public address of the console (chart images in replies).
        telegram_webhook_url: Public webhook URL for Telegram; empty means long polling.
        telegram_webhook_secret: Secret Telegram echoes in webhook calls.
        demo_agent_password: Password of the demo agent that ``make demo`` creates.
        twilio_auth_token: Checks Twilio's request signatures on the voice webhook.
        rate_limit: Messages per sender on the public channels, ``<messages>/<seconds>``
            (``CRM_RATE_LIMIT``, default ``20/10``; ``off`` turns limiting off).
        rate_limit_ip: Messages per client address on the REST channel, where a
            client names its own sender ids (``CRM_RATE_LIMIT_IP``; empty, the
            default, means ten times ``rate_limit``: ``200/10``; ``off``).
        trusted_proxies: Reverse proxies whose ``X-Forwarded-For`` is believed,
            addresses or networks, comma separated (``CRM_TRUSTED_PROXIES``,
            default none: the TCP peer is the client, and the header, which any
            client can send, is ignored). Behind a reverse proxy every request
            comes from the proxy's address: list it here (``127.0.0.1`` for nginx
            on the same machine) and have the proxy append the client's address
            (nginx: ``proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for``),
            or all users share one address bucket -- none at all when the proxy
            is on loopback, which is exempt.
        rate_limit_ip_exempt: Client addresses or networks without an address
            bucket (still limited per sender): ``CRM_RATE_LIMIT_IP_EXEMPT``,
            default loopback, ``127.0.0.0/8,::1`` (this machine's tools, tests and
            benchmark); ``none`` limits loopback too.
        rasa_speedups: Whether the Rasa process runs with bot/speedups.py's patches
            (``CRM_RASA_SPEEDUPS``, default on; ``0`` for Rasa's own code paths, which
            the benchmark measures for comparison).
        today: The "as of" date every relative period counts from (``CRM_TODAY``,
            ``YYYY-MM-DD``); empty, the default, means the last day of the loaded
            data for the demo data, the calendar date otherwise (crm_ml.asof).
        event_broker_url: RabbitMQ for the conversation events (``CRM_EVENT_BROKER_URL``,
            ``amqp://user:password@host:5672/vhost``): Rasa publishes every message to a
            durable queue and ``crm-ml events consume`` writes them to the CRM
            (crm_ml.events). Empty, the default: Rasa writes them itself.
        smtp_url: Where agents' replies to anonymous visitors are e-mailed
            (``CRM_SMTP_URL``, ``smtp://host:port``, e.g. ``smtp://127.0.0.1:8025``;
            optional ``user:password@``); empty, the default, sends no e-mail.
    """

    database_url: str
    datasets_dir: Path
    models_dir: Path
    identity_secret: str = field(repr=False)
    telegram_token: str = field(repr=False)
    telegram_base_url: str
    allow_download: bool
    support_hours: str = "Mon-Fri 08:00-20:00"
    timezone: str = "Europe/London"
    rasa_url: str = "http://127.0.0.1:5005"
    console_secret: str = field(default="", repr=False)
    tracker_db_url: str = ""
    console_url: str = "http://127.0.0.1:8000"
    telegram_webhook_url: str = ""
    telegram_webhook_secret: str = field(default="", repr=False)
    demo_agent_password: str = field(default="demo-agent", repr=False)
    twilio_auth_token: str = field(default="", repr=False)
    rate_limit: str = "20/10"
    rate_limit_ip: str = ""
    trusted_proxies: str = ""
    rate_limit_ip_exempt: str = "127.0.0.0/8,::1"
    rasa_speedups: bool = True
    today: str = ""
    event_broker_url: str = field(default="", repr=False)
    smtp_url: str = field(default="", repr=False)


def _get(env: dict[str, str], key: str, default: str) -> str:
    return os.environ.get(key) or env.get(key) or default


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings, read once per process."""
    env = _read_dotenv(Path.cwd() / ".env")
    default_db = f"sqlite:///{PROJECT_ROOT / 'var' / 'crm.db'}"
    return Settings(
        database_url=_get(env, "CRM_DATABASE_URL", default_db),
        datasets_dir=Path(
            _get(env, "CRM_DATASETS_DIR", str(PROJECT_ROOT.parent / "shared" / "datasets"))
        ),
        models_dir=Path(_get(env, "CRM_MODELS_DIR", str(PROJECT_ROOT / "models"))),
        identity_secret=_get(env, "CRM_IDENTITY_SECRET", ""),
        telegram_token=_get(env, "TELEGRAM_TOKEN", ""),
        telegram_base_url=_get(env, "TELEGRAM_BASE_URL", "https://api.telegram.org/bot"),
        allow_download=_get(env, "CRM_ALLOW_DOWNLOAD", "1") not in {"0", "false", "no"},
        support_hours=_get(env, "CRM_SUPPORT_HOURS", "Mon-Fri 08:00-20:00"),
        timezone=_get(env, "CRM_TIMEZONE", "Europe/London"),
        rasa_url=_get(env, "CRM_RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
        console_secret=_get(env, "CRM_CONSOLE_SECRET", ""),
        tracker_db_url=_get(env, "CRM_TRACKER_DB_URL",
                            f"sqlite:///{PROJECT_ROOT / 'var' / 'tracker.db'}"),
        console_url=_get(env, "CRM_CONSOLE_URL", "http://127.0.0.1:8000").rstrip("/"),
        telegram_webhook_url=_get(env, "TELEGRAM_WEBHOOK_URL", ""),
        telegram_webhook_secret=_get(env, "TELEGRAM_WEBHOOK_SECRET", ""),
        demo_agent_password=_get(env, "CRM_DEMO_AGENT_PASSWORD", "demo-agent"),
        twilio_auth_token=_get(env, "TWILIO_AUTH_TOKEN", ""),
        rate_limit=_get(env, "CRM_RATE_LIMIT", "20/10"),
        rate_limit_ip=_get(env, "CRM_RATE_LIMIT_IP", ""),
        trusted_proxies=_get(env, "CRM_TRUSTED_PROXIES", ""),
        rate_limit_ip_exempt=_get(env, "CRM_RATE_LIMIT_IP_EXEMPT", "127.0.0.0/8,::1"),
        rasa_speedups=_get(env, "CRM_RASA_SPEEDUPS", "1") not in {"0", "false", "no"},
        today=_get(env, "CRM_TODAY", ""),
        event_broker_url=_get(env, "CRM_EVENT_BROKER_URL", ""),
        smtp_url=_get(env, "CRM_SMTP_URL", ""),
    )
