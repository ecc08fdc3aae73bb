"""Write HAProxy's configuration for Rasa replicas and action servers behind one address each.

    .venv/bin/python scripts/haproxy_config.py --rasa 5006,5007 --actions 5056,5057 \
        [--rasa-bind 127.0.0.1:5005] [--actions-bind 127.0.0.1:5055] > var/haproxy.cfg

Every replica is equal (the tracker store and the lock store are shared), so the
balancing is plain ``leastconn`` with no stickiness (``--sticky`` hashes each
conversation's sender to one replica instead; `make bench` compares the two). Health
checks (a second apart, 3 s to answer) take a replica out after two failures and
back after two good ones; a request that could not reach a replica, or got no answer
from one that died, is retried once on another (``retry-on``; the REST channel's
``message_id`` makes a retried message safe).
deploy/haproxy.cfg is this script's output for two of each (a test keeps it so).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["render"]


def _ports(text: str) -> list[int]:
    ports = [int(p) for p in text.split(",") if p.strip()]
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError(f"ports expected, e.g. 5006,5007: {text!r}")
    return ports


def render(rasa: list[int], actions: list[int], *, rasa_bind: str = "127.0.0.1:5005",
           actions_bind: str = "127.0.0.1:5055", host: str = "127.0.0.1",
           stats_bind: str | None = None, sticky: bool = False) -> str:
    """The configuration text.

    Args:
        rasa: Ports of the Rasa replicas.
        actions: Ports of the action servers (none: Rasa only).
        rasa_bind: Where clients and channels reach Rasa.
        actions_bind: Where the Rasa replicas reach the action servers.
        host: The replicas' address.
        stats_bind: Address of HAProxy's statistics page, or None.
        sticky: Send each conversation to the same replica while it is up (a hash of
            the JSON body's ``sender``, consistent), instead of the least busy one.
            Not needed for correctness; `make bench` measures what it changes.
    """
    lines = [
        "# Rasa replicas and action servers behind HAProxy (scripts/haproxy_config.py).",
        "global",
        "    maxconn 4096",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 90s",
        "    timeout server 90s",
        "    timeout http-request 10s",
        "    # a replica busy with a burst answers its check late, not never",
        "    timeout check 3s",
        "    # a replica that refuses the connection, or dies before answering: once more",
        "    # on another (the REST channel's message_id makes a repeated message safe)",
        "    retries 2",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response response-timeout",
        "    default-server inter 1s fall 2 rise 2",
        "",
        "frontend rasa",
        f"    bind {rasa_bind}",
        "    default_backend rasa_replicas",
        "",
        "backend rasa_replicas",
        *(["    # one conversation, one replica (while it is up): the sender in the body",
           "    option http-buffer-request",
           "    balance hash req.body,json_query('$.sender')",
           "    hash-type consistent"] if sticky else ["    balance leastconn"]),
        "    option httpchk GET /",
        "    http-check expect status 200",
    ]
    lines += [f"    server rasa{i} {host}:{port} check" for i, port in enumerate(rasa, 1)]
    if actions:
        lines += _actions(actions, actions_bind, host)
    if stats_bind:
        lines += ["", "listen stats", f"    bind {stats_bind}", "    stats enable",
                  "    stats uri /", "    stats refresh 5s"]
    return "\n".join(lines) + "\n"


def _actions(actions: list[int], actions_bind: str, host: str) -> list[str]:
    lines = [
        "",
        "frontend actions",
        f"    bind {actions_bind}",
        "    default_backend action_servers",
        "",
        "backend action_servers",
        "    balance leastconn",
        "    option httpchk GET /health",
        "    http-check expect status 200",
    ]
    lines += [f"    server actions{i} {host}:{port} check" for i, port in enumerate(actions, 1)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa", type=_ports, required=True, help="Rasa replicas' ports")
    parser.add_argument("--actions", type=_ports, required=True, help="action servers' ports")
    parser.add_argument("--rasa-bind", default="127.0.0.1:5005")
    parser.add_argument("--actions-bind", default="127.0.0.1:5055")
    parser.add_argument("--host", default="127.0.0.1", help="the replicas' address")
    parser.add_argument("--stats-bind", default=None, help="statistics page, e.g. :8404")
    parser.add_argument("--sticky", action="store_true",
                        help="each conversation to one replica (by the body's sender)")
    args = parser.parse_args(argv)
    sys.stdout.write(render(args.rasa, args.actions, rasa_bind=args.rasa_bind,
                            actions_bind=args.actions_bind, host=args.host,
                            stats_bind=args.stats_bind, sticky=args.sticky))
    return 0


if __name__ == "__main__":
    sys.exit(main())
