"""``crm-ml events``: the consumer that writes conversation events from RabbitMQ to the CRM.

``crm-ml events consume`` runs until stopped (Ctrl-C, SIGTERM); ``--drain`` stops once
the queue is empty (tests, a one-off catch-up). ``crm-ml events status`` prints how many
messages wait. Both read ``CRM_EVENT_BROKER_URL`` (see :mod:`crm_ml.events`).
"""

from __future__ import annotations

import logging
import signal
import time

import typer

__all__ = ["app"]

logger = logging.getLogger(__name__)

app = typer.Typer(help="Conversation events through RabbitMQ (CRM_EVENT_BROKER_URL).",
                  no_args_is_help=True)


def _broker_url() -> str:
    from crm_ml.config import get_settings

    url = get_settings().event_broker_url
    if not url:
        typer.echo("CRM_EVENT_BROKER_URL is not set: Rasa writes the events to the CRM "
                   "itself, and there is nothing to consume.", err=True)
        raise typer.Exit(2)
    return url


@app.command()
def consume(
    batch: int = typer.Option(500, help="Most messages per transaction."),
    drain: bool = typer.Option(False, help="Stop once the queue has been empty for a second."),
) -> None:
    """Write the queued conversation events to the CRM, acknowledging after each commit."""
    from crm_ml import events
    from crm_ml.config import get_settings

    url = _broker_url()
    stopping = {"now": False}
    idle = {"since": time.monotonic()}

    def stop_now(_signum: int, _frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop_now)

    def stored(n: int) -> None:
        idle["since"] = time.monotonic()

    def stop() -> bool:
        if stopping["now"]:
            return True
        return drain and time.monotonic() - idle["since"] > 1.0 and events.queue_depth(url) == 0

    try:
        n = events.consume(url, get_settings().database_url, batch=batch, stop=stop,
                           progress=stored)
    except KeyboardInterrupt:
        n = None
    if n is not None:
        typer.echo(f"{n} event(s) stored")


@app.command()
def status() -> None:
    """How many conversation events wait in the queue."""
    from crm_ml import events

    url = _broker_url()
    typer.echo(f"{events.queue_depth(url)} event(s) waiting in {events.split_url(url)[1]}")
