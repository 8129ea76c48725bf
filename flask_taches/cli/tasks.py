"""Commands about single tasks: run, add, list, show, cancel, restart, delete, purge.

A thin shell over the service API (``app_state().service``) and the runner.
Bad input never changes anything: it gets one line on stderr (``Error: ...``)
and exit code 2, through the one boundary of :mod:`.errors`. What a task or a
user wrote is printed through :func:`~flask_taches.console.printable`, so no
control character of theirs reaches the terminal (``--json`` escapes as JSON).
"""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from ..console import printable
from ..exit_codes import exit_code
from ..models import Tache
from ..preview import preview
from ..runner import run_claimed, run_one
from ..state import app_state
from ..status import FINISHED, Status
from . import taches_cli
from .errors import TaskCommand, fail
from .inputs import TASK_ID, parse_datetime, parse_parametres

if TYPE_CHECKING:
    from ..service import TaskService

LIST_LIMIT = 50  # rows `list` shows unless told otherwise
#: Characters of one log entry's details that ``show`` prints.
DETAILS_PREVIEW = 4000

STATUS_NAMES = [s.value for s in Status]
FINISHED_NAMES = sorted(s.value for s in FINISHED)


def cli_user() -> str:
    """Who cancels from the command line, for the task's log."""
    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):  # no login name in this environment
        return "cli"


def _service() -> TaskService:
    return app_state().service


def _as_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


# -- run ------------------------------------------------------------------------------------


@taches_cli.command("run", cls=TaskCommand)
@click.argument("tache_id", metavar="ID", type=TASK_ID)
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    help="-v: start, end and log lines; -vv: also debug lines and a progress bar.",
)
@click.option("--force", is_flag=True, help="Run it even if it is not TO_RUN (never twice).")
@click.option("--attempt", type=int, hidden=True, help="Run an attempt a manager has claimed.")
def run_command(tache_id: int, verbosity: int, force: bool, attempt: int | None) -> None:
    """Run task ID in this process.

    Exit status: 0 completed; 1 failed, interrupted, cancelled or retry
    scheduled; 2 not runnable (unknown id, not TO_RUN without --force, method
    outside TACHES_ALLOWED_MODULES) or its end not this run's (taken over elsewhere).
    """
    if attempt is not None:
        status = run_claimed(tache_id, attempt, verbosity=verbosity, for_manager=True)
    else:
        status = run_one(tache_id, force=force, verbosity=verbosity)
    if status is not Status.COMPLETED and verbosity == 0:
        ended = status.value if status is not None else "not recorded (taken over elsewhere)"
        click.echo(f"task {tache_id} ended {ended}", err=True)
    raise click.exceptions.Exit(exit_code(status))


# -- add --------------------------------------------------------------------------------------


@taches_cli.command("add", cls=TaskCommand)
@click.argument("method")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="One parametre; VALUE is read as JSON when it parses (3, true, [1]), else as text.",
)
@click.option("--json", "json_text", metavar="OBJECT", help="parametres as a JSON object.")
@click.option("--signature", help="Groups tasks; `latest(signature)` finds the newest.")
@click.option("--queue", help="Queue (default TACHES_DEFAULT_QUEUE).")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--run-at", "run_at", metavar="ISO", help="Not before this date-time (naive: UTC).")
@click.option("--max-attempts", type=click.IntRange(min=1), help="Attempts before giving up.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option(
    "--fichier",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file to attach (copied into the task's folder, as add(fichier=...)).",
)
def add_command(
    method: str,
    params: tuple[str, ...],
    json_text: str | None,
    signature: str | None,
    queue: str | None,
    priority: int | None,
    run_at: str | None,
    max_attempts: int | None,
    timeout: float | None,
    fichier: Path | None,
) -> None:
    """Add a task that calls METHOD ("package.module:function") and print its id."""
    options: dict[str, Any] = {"parametres": parse_parametres(json_text, params)}
    if run_at is not None:
        options["run_at"] = parse_datetime(run_at)
    given = {
        "signature": signature,
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "timeout": timeout,
    }
    options.update({key: value for key, value in given.items() if value is not None})
    click.echo(_service().add(method, owner=None, fichier=fichier, **options))


# -- list and show ----------------------------------------------------------------------------


@taches_cli.command("list", cls=TaskCommand)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_NAMES, case_sensitive=False),
    help="Only these statuses (repeatable).",
)
@click.option("--signature", help="Only tasks with this signature.")
@click.option("--limit", type=click.IntRange(min=1), default=LIST_LIMIT, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_command(
    statuses: tuple[str, ...], signature: str | None, limit: int, as_json: bool
) -> None:
    """List tasks, newest first."""
    query = select(Tache).order_by(Tache.id.desc()).limit(limit)
    if statuses:
        query = query.where(Tache.status.in_([s.upper() for s in statuses]))
    if signature is not None:
        query = query.where(Tache.signature == signature)
    taches = list(_service().db().session.scalars(query))
    if as_json:
        click.echo(_as_json([tache.to_dict() for tache in taches]))
        return
    if not taches:
        click.echo("no task")
        return
    click.echo(f"{'ID':>6}  {'STATUS':<11}  {'PROGRESS':>8}  {'CREATED (UTC)':<19}  METHOD")
    for tache in taches:
        click.echo(printable(_list_line(tache)))


def _list_line(tache: Tache) -> str:
    percent = (tache.progress or {}).get("percent")
    progress = f"{percent:.1f}%" if percent is not None else "-"
    created = tache.created_at.strftime("%Y-%m-%d %H:%M:%S") if tache.created_at else "-"
    line = f"{tache.id:>6}  {tache.status:<11}  {progress:>8}  {created:<19}  {tache.method}"
    return f"{line}  [{tache.signature}]" if tache.signature else line


@taches_cli.command("show", cls=TaskCommand)
@click.argument("tache_id", metavar="ID", type=TASK_ID)
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
def show_command(tache_id: int, as_json: bool) -> None:
    """Show task ID: its columns (never parametres_caches) and its logs."""
    tache = _service().get_or_raise(tache_id)
    data = tache.to_dict()
    if as_json:
        click.echo(_as_json(data))
        return
    click.echo(printable(f"task {tache.id}  {tache.status}"))
    for key, value in data.items():
        if key in ("id", "status", "logs") or value is None:
            continue
        click.echo(printable(f"  {key:<20} {preview(value)}"))
    logs = data.get("logs") or []
    click.echo(f"  logs ({len(logs)})" + (":" if logs else ""))
    for entry in logs:
        level = str(entry.get("level", "")).upper()
        click.echo(printable(f"    {entry.get('at', '')}  {level:<8} {entry.get('message', '')}"))
        if entry.get("details") is not None:
            # A traceback keeps its lines; every other control character is escaped.
            for line in preview(entry["details"], limit=DETAILS_PREVIEW).split("\n"):
                click.echo(printable(f"        {line}"))


# -- actions --------------------------------------------------------------------------------


@taches_cli.command("cancel", cls=TaskCommand)
@click.argument("tache_id", metavar="ID", type=TASK_ID)
def cancel_command(tache_id: int) -> None:
    """Cancel task ID; a RUNNING one is stopped by its own process at its next heartbeat."""
    status = _service().cancel(tache_id, who=cli_user())
    if status is None:
        fail(f"task {tache_id} is {_service().get_or_raise(tache_id).status}: nothing to cancel")
    if status is Status.RUNNING:
        click.echo(f"task {tache_id} is RUNNING: asked its process to stop it")
    else:
        click.echo(f"task {tache_id} is {status.value}")


@taches_cli.command("restart", cls=TaskCommand)
@click.argument("tache_id", metavar="ID", type=TASK_ID)
def restart_command(tache_id: int) -> None:
    """Put finished task ID back to TO_RUN (its logs are kept)."""
    _service().restart(tache_id)
    click.echo(f"task {tache_id} is TO_RUN")


@taches_cli.command("delete", cls=TaskCommand)
@click.argument("tache_id", metavar="ID", type=TASK_ID)
def delete_command(tache_id: int) -> None:
    """Delete task ID and its attached file (not while it is RUNNING)."""
    _service().delete(tache_id)
    click.echo(f"task {tache_id} deleted")


@taches_cli.command("purge", cls=TaskCommand)
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    required=True,
    metavar="DAYS",
    help="Only tasks that ended more than DAYS days ago.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(FINISHED_NAMES, case_sensitive=False),
    help="Only these finished statuses (repeatable; default: all finished).",
)
def purge_command(days: float, statuses: tuple[str, ...]) -> None:
    """Delete finished tasks that ended more than DAYS days ago, with their files."""
    count = _service().purge(timedelta(days=days), statuses or None)
    click.echo(f"{count} task(s) deleted")
