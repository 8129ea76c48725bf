"""Commands about single tasks: run, add, list, show, cancel, restart, delete, purge, init-db.

A thin shell over the service API (:class:`~flask_taches.TachesExtension`) and
the runner. Bad input never changes anything: it gets one line on stderr
(``Error: ...``) and exit code 2.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import click
from sqlalchemy import select

from ..clock import as_utc
from ..console import preview
from ..exceptions import TacheError, TacheNotFound
from ..models import MAX_ID, Tache, taches_table
from ..runner import run_claimed, run_one
from ..state import app_state
from ..status import FINISHED, Status
from . import taches_cli

if TYPE_CHECKING:
    from ..extension import TachesExtension

EXIT_COMPLETED = 0  # `run`: the task completed
EXIT_NOT_COMPLETED = 1  # `run`: failed, interrupted, cancelled, or a retry is scheduled
EXIT_INVALID = 2  # bad input: unknown id, not TO_RUN, refused method...
LIST_LIMIT = 50  # rows `list` shows unless told otherwise

STATUS_NAMES = [s.value for s in Status]
FINISHED_NAMES = sorted(s.value for s in FINISHED)


class InvalidInput(click.ClickException):
    """Bad input: shown as one ``Error: ...`` line on stderr, exit code 2."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


class TaskCommand(click.Command):
    """A command whose usage errors are one line too (not the usage block)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise InvalidInput(exc.format_message()) from exc


def fail(message: str) -> NoReturn:
    raise InvalidInput(message)


def parse_id(text: str) -> int:
    """A task id from the command line, or a one-line refusal."""
    try:
        value = int(text)
    except ValueError:
        fail(f"{text!r} is not a task id (a positive integer)")
    if not 0 < value <= MAX_ID:
        fail(f"{text!r} is not a task id (an integer from 1 to {MAX_ID})")
    return value


def exit_code(status: Status | None) -> int:
    """``run``'s exit code for the status stored at the end (None: fenced out)."""
    return EXIT_COMPLETED if status is Status.COMPLETED else EXIT_NOT_COMPLETED


def parse_param(text: str) -> tuple[str, Any]:
    """``key=value``: the value is JSON when it parses as JSON, else the raw string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        fail(f"-p {text!r}: expected KEY=VALUE")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def parse_parametres(json_text: str | None, params: Sequence[str]) -> dict[str, Any]:
    parametres: dict[str, Any] = {}
    if json_text is not None:
        try:
            parametres = json.loads(json_text)
        except ValueError as exc:
            fail(f"--json is not valid JSON: {exc}")
        if not isinstance(parametres, dict):
            fail(f"--json must be a JSON object, not {type(parametres).__name__}")
    for text in params:
        key, value = parse_param(text)
        parametres[key] = value
    return parametres


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time; ``Z`` means UTC and a naive one is UTC too."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--run-at {text!r} is not an ISO 8601 date-time (e.g. 2030-01-31T08:00:00+01:00)")
    return value if value.tzinfo is not None else as_utc(value)


def cli_user() -> str:
    """Who cancels from the command line, for the task's log."""
    try:
        return f"cli ({getpass.getuser()})"
    except (KeyError, OSError):  # no login name in this environment
        return "cli"


def _extension() -> TachesExtension:
    return app_state().service


def _get(tache_id: int) -> Tache:
    try:
        tache: Tache = _extension().get_or_raise(tache_id)
    except TacheNotFound as exc:
        fail(str(exc))
    return tache


def _as_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


# -- run ------------------------------------------------------------------------------------


@taches_cli.command("run", cls=TaskCommand)
@click.argument("tache_id", metavar="ID")
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    help="-v: start, end and log lines; -vv: also debug lines and a progress bar.",
)
@click.option("--force", is_flag=True, help="Run it even if it is not TO_RUN (never twice).")
@click.option("--attempt", type=int, hidden=True, help="Run an attempt a manager has claimed.")
def run_command(tache_id: str, verbosity: int, force: bool, attempt: int | None) -> None:
    """Run task ID in this process.

    Exit status: 0 completed; 1 failed, interrupted, cancelled or retry
    scheduled; 2 not runnable (unknown id, not TO_RUN without --force, method
    outside TACHES_ALLOWED_MODULES).
    """
    ident = parse_id(tache_id)
    try:
        if attempt is not None:
            status = run_claimed(ident, attempt, verbosity=verbosity)
        else:
            status = run_one(ident, force=force, verbosity=verbosity)
    except TacheError as exc:
        fail(str(exc))
    if status is not Status.COMPLETED and verbosity == 0:
        ended = status.value if status is not None else "not recorded (taken over elsewhere)"
        click.echo(f"task {ident} ended {ended}", err=True)
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
    try:
        tache_id = _extension().add(method, owner=None, **options)
    except TacheError as exc:
        fail(str(exc))
    click.echo(tache_id)


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
    taches = list(_extension().db().session.scalars(query))
    if as_json:
        click.echo(_as_json([tache.to_dict() for tache in taches]))
        return
    if not taches:
        click.echo("no task")
        return
    click.echo(f"{'ID':>6}  {'STATUS':<11}  {'PROGRESS':>8}  {'CREATED (UTC)':<19}  METHOD")
    for tache in taches:
        click.echo(_list_line(tache))


def _list_line(tache: Tache) -> str:
    percent = (tache.progress or {}).get("percent")
    progress = f"{percent:.1f}%" if percent is not None else "-"
    created = tache.created_at.strftime("%Y-%m-%d %H:%M:%S") if tache.created_at else "-"
    line = f"{tache.id:>6}  {tache.status:<11}  {progress:>8}  {created:<19}  {tache.method}"
    return f"{line}  [{tache.signature}]" if tache.signature else line


@taches_cli.command("show", cls=TaskCommand)
@click.argument("tache_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
def show_command(tache_id: str, as_json: bool) -> None:
    """Show task ID: its columns (never parametres_caches) and its logs."""
    tache = _get(parse_id(tache_id))
    data = tache.to_dict()
    if as_json:
        click.echo(_as_json(data))
        return
    click.echo(f"task {tache.id}  {tache.status}")
    for key, value in data.items():
        if key in ("id", "status", "logs") or value is None:
            continue
        click.echo(f"  {key:<20} {preview(value)}")
    logs = data.get("logs") or []
    click.echo(f"  logs ({len(logs)})" + (":" if logs else ""))
    for entry in logs:
        level = str(entry.get("level", "")).upper()
        click.echo(f"    {entry.get('at', '')}  {level:<8} {entry.get('message', '')}")
        if entry.get("details") is not None:
            for line in preview(entry["details"], limit=4000).splitlines():
                click.echo(f"        {line}")


# -- actions --------------------------------------------------------------------------------


@taches_cli.command("cancel", cls=TaskCommand)
@click.argument("tache_id", metavar="ID")
def cancel_command(tache_id: str) -> None:
    """Cancel task ID; a RUNNING one is stopped by its own process at its next heartbeat."""
    ident = parse_id(tache_id)
    try:
        status = _extension().cancel(ident, who=cli_user())
    except TacheError as exc:
        fail(str(exc))
    if status is None:
        fail(f"task {ident} is {_get(ident).status}: nothing to cancel")
    if status is Status.RUNNING:
        click.echo(f"task {ident} is RUNNING: asked its process to stop it")
    else:
        click.echo(f"task {ident} is {status.value}")


@taches_cli.command("restart", cls=TaskCommand)
@click.argument("tache_id", metavar="ID")
def restart_command(tache_id: str) -> None:
    """Put finished task ID back to TO_RUN (its logs are kept)."""
    ident = parse_id(tache_id)
    try:
        _extension().restart(ident)
    except TacheError as exc:
        fail(str(exc))
    click.echo(f"task {ident} is TO_RUN")


@taches_cli.command("delete", cls=TaskCommand)
@click.argument("tache_id", metavar="ID")
def delete_command(tache_id: str) -> None:
    """Delete task ID and its attached file (not while it is RUNNING)."""
    ident = parse_id(tache_id)
    try:
        _extension().delete(ident)
    except TacheError as exc:
        fail(str(exc))
    click.echo(f"task {ident} deleted")


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
    count = _extension().purge(timedelta(days=days), statuses or None)
    click.echo(f"{count} task(s) deleted")


# -- schema -------------------------------------------------------------------------------------


@taches_cli.command("init-db", cls=TaskCommand)
def init_db_command() -> None:
    """Create the taches table and its indexes if missing (a quick start without migrations)."""
    db = _extension().db()
    db.metadata.tables[taches_table.name].create(db.engine, checkfirst=True)
    click.echo(f"table {taches_table.name!r} is ready")
