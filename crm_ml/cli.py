"""``crm-ml``: the command-line tool of the CRM (app env).

Examples::

    crm-ml db upgrade          # create or migrate the CRM schema
    crm-ml load                # load the public datasets (idempotent)
    crm-ml stats               # row counts of the main tables
    crm-ml train all           # train every model and write scores to the CRM
    crm-ml report --format json
"""

from __future__ import annotations

import json
import logging
import sys

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crm_ml.errors import CRMError

__all__ = ["app", "main"]

app = typer.Typer(help="CRM data and models of the conversational CRM assistant.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("heads")) -> None:
    """Create or migrate the CRM schema to REVISION (default: every head)."""
    from crm_ml.config import get_settings
    from crm_ml.db import migrate

    migrate.upgrade(revision=revision)
    console.print(f"[green]database at revision {migrate.current()}[/] "
                  f"({_safe_url(get_settings().database_url)})")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the CRM database."""
    from crm_ml.db import migrate

    typer.echo(migrate.current() or "empty")


def _safe_url(url: str) -> str:
    """The database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def load(
    only: str = typer.Option("all", help="all | retail | leads"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Load Online Retail II, Bank Marketing and X Education into the CRM.

    Loading twice changes nothing: a dataset whose files were already loaded is
    skipped. Each dataset is written in one transaction.
    """
    from crm_ml import loader
    from crm_ml.db import migrate

    migrate.upgrade()
    what = ("retail", "leads") if only == "all" else (only,)
    with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(task, total=total or 1)
            bar.update(tasks[task], completed=done if total else 1, total=total or 1)

        summaries = loader.load_all(progress=progress, what=what)
    if as_json:
        typer.echo(json.dumps([s.as_dict() | {"skipped": s.skipped} for s in summaries],
                              indent=2))
        return
    for s in summaries:
        _print_summary(s)


def _print_summary(s: object) -> None:
    from crm_ml.loader import LoadSummary

    assert isinstance(s, LoadSummary)
    state = "already loaded, nothing changed" if s.skipped else f"loaded in {s.seconds:.1f} s"
    table = Table(title=f"{s.dataset}: {state}", show_header=True)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{s.rows_read:,}")
    for key, value in s.kept.items():
        table.add_row(f"kept: {key}", f"{value:,}")
    for key, value in s.dropped.items():
        table.add_row(f"dropped: {key}", f"{value:,}")
    for key, value in s.facts.items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    Console().print(table)


@app.command()
def stats() -> None:
    """Print row counts of the main CRM tables."""
    from crm_ml.loader import table_counts

    for name, n in table_counts().items():
        typer.echo(f"{name:<14}{n:>10,}")


gdpr_app = typer.Typer(help="Data-subject requests: export or erase a customer's data.",
                       no_args_is_help=True)
app.add_typer(gdpr_app, name="gdpr")


@gdpr_app.command("export")
def gdpr_export(customer: int, output: str = typer.Option("-", help="file, or - for stdout")
                ) -> None:
    """Write everything held about CUSTOMER as JSON."""
    from crm_ml import gdpr
    from crm_ml.db import session_scope

    with session_scope() as s:
        data = gdpr.export(session=s, customer_id=customer)
    blob = json.dumps(data, indent=2, default=str)
    if output == "-":
        typer.echo(blob)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(blob)
        console.print(f"wrote {output}")


@gdpr_app.command("erase")
def gdpr_erase(customer: int,
               yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation")
               ) -> None:
    """Erase or anonymize CUSTOMER everywhere, conversation events included."""
    from crm_ml import gdpr
    from crm_ml.db import session_scope

    if not yes:
        typer.confirm(f"Erase every personal record of customer {customer}?", abort=True)
    with session_scope() as s:
        counts = gdpr.erase(session=s, customer_id=customer)
    for table, n in counts.items():
        done = "pseudonymized" if table == "audit_log" else "removed"
        typer.echo(f"{table:<20}{n:>6} {done}")
    typer.echo(f"customer {customer} anonymized")


agents_app = typer.Typer(help="Human agents of the console.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")


@agents_app.command("add")
def agents_add(username: str, name: str = typer.Option(..., help="display name"),
               password: str = typer.Option(..., prompt=True, hide_input=True,
                                            confirmation_prompt=True)) -> None:
    """Create a console agent (the password is stored hashed)."""
    from crm_ml.agents import create_agent

    try:
        number = create_agent(username, name, password)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(f"agent {username} created as agent:{number}")


@agents_app.command("demo")
def agents_demo() -> None:
    """Create or reset the demo agent ``agent`` (password CRM_DEMO_AGENT_PASSWORD)."""
    from crm_ml.agents import ensure_demo_agent

    typer.echo(f"demo agent ready as agent:{ensure_demo_agent()}")


@app.command("chat-link")
def chat_link(user: str = typer.Argument("customer:12347")) -> None:
    """Print a signed web-chat path for USER (a demo login)."""
    from crm_ml.agents import chat_link as link

    typer.echo(link(user))


def _mount_model_commands() -> None:
    """Add ``train`` and ``report`` from crm_ml.cli_models when present."""
    try:
        from crm_ml.cli_models import app as models_app
    except ImportError:  # the models' CLI is optional while it is being built
        return
    for cmd in models_app.registered_commands:
        app.registered_commands.append(cmd)


_mount_model_commands()


def _mount_sales_commands() -> None:
    """Add ``reminders`` from crm_ml.cli_sales."""
    from crm_ml.cli_sales import app as sales_app

    for cmd in sales_app.registered_commands:
        app.registered_commands.append(cmd)


_mount_sales_commands()


def _mount_event_commands() -> None:
    """Add ``events consume`` and ``events status`` from crm_ml.cli_events."""
    from crm_ml.cli_events import app as events_app

    app.add_typer(events_app, name="events")


_mount_event_commands()


def main() -> None:
    """Entry point of the ``crm-ml`` script; CRM errors end with a clear message."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except CRMError as exc:
        console.print(f"[red]error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
