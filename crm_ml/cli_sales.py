"""``crm-ml reminders``: queue the Telegram reminders of follow-ups that fell due.

Mounted into :mod:`crm_ml.cli` like :mod:`crm_ml.cli_models` (its commands are
appended to the main app): once by default, or every ``--every`` seconds.
"""

from __future__ import annotations

import logging
import time

import typer

from crm_ml.audit import utcnow
from crm_ml.db.session import session_scope

__all__ = ["app", "reminders"]

logger = logging.getLogger(__name__)

app = typer.Typer(help="Sales assistant chores.", no_args_is_help=True)


@app.command()
def reminders(
    every: float = typer.Option(0.0, help="Seconds between runs; 0 runs once."),
    bot_id: str = typer.Option("", help="Telegram bot id of the outbox (default: the token's)."),
) -> None:
    """Queue a Telegram reminder for each follow-up now due (each sent once)."""
    from crm_ml.followups import send_due_reminders

    while True:
        with session_scope() as session:
            queued = send_due_reminders(session, utcnow(), bot_id=bot_id or None)
        typer.echo(f"{queued} reminder(s) queued")
        if every <= 0:
            return
        time.sleep(every)
