"""Write the endpoints.yml every Rasa replica shares (make run with CRM_RASA_REPLICAS > 1).

    .venv/bin/python scripts/replica_endpoints.py --tracker postgresql://u:p@db:5432/tracker \
        --redis redis://cache:6379/0 --actions http://127.0.0.1:5055/webhook > var/endpoints.yml

Replicas must share the conversations: the tracker store on PostgreSQL (our
``CRMTrackerStore``, which checks the database before trusting what it kept, so any
replica may take any turn) and Rasa's Redis lock store (one turn per conversation at a
time across replicas). The CRM event broker stays; with ``CRM_EVENT_BROKER_URL`` it
publishes to RabbitMQ.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import unquote, urlsplit

__all__ = ["render"]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(tracker_url: str, redis_url: str, actions_url: str, key_prefix: str = "crm") -> str:
    """The endpoints.yml text.

    Raises:
        ValueError: the tracker store is not PostgreSQL, or the lock store not Redis.
    """
    db = urlsplit(tracker_url)
    if not db.scheme.startswith("postgresql"):
        raise ValueError("replicas need a PostgreSQL tracker store (CRM_TRACKER_DB_URL="
                         "postgresql://user@host:5432/db): SQLite is one machine's file")
    cache = urlsplit(redis_url)
    if cache.scheme not in {"redis", "rediss"}:
        raise ValueError("replicas need a Redis lock store (CRM_REDIS_URL=redis://host:6379/0)")
    tracker = ["tracker_store:", "  type: bot.tracker_store.CRMTrackerStore",
               '  dialect: "postgresql"', f"  url: {_quote(db.hostname or '127.0.0.1')}",
               f"  port: {db.port or 5432}", f"  db: {_quote(db.path.lstrip('/') or 'postgres')}"]
    if db.username:
        tracker.append(f"  username: {_quote(unquote(db.username))}")
    if db.password:
        tracker.append(f"  password: {_quote(unquote(db.password))}")
    lock = ["lock_store:", '  type: "redis"', f"  url: {_quote(cache.hostname or '127.0.0.1')}",
            f"  port: {cache.port or 6379}", f"  db: {int(cache.path.lstrip('/') or 0)}",
            f"  key_prefix: {_quote(key_prefix)}"]
    if cache.password:
        lock.append(f"  password: {_quote(unquote(cache.password))}")
    if cache.scheme == "rediss":
        lock.append("  use_ssl: true")
    return "\n".join([
        "# Shared by every Rasa replica (scripts/replica_endpoints.py).",
        "action_endpoint:", f"  url: {_quote(actions_url)}", "  timeout: 20",
        *tracker, *lock, "event_broker:", "  type: bot.broker.CRMEventBroker"]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracker", required=True, help="PostgreSQL URL of the tracker store")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis lock store")
    parser.add_argument("--actions", default="http://127.0.0.1:5055/webhook",
                        help="the action servers' address (the load balancer)")
    parser.add_argument("--key-prefix", default="crm", help="Redis key prefix of the locks")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render(args.tracker, args.redis, args.actions, args.key_prefix))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
