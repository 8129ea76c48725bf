"""Commands for operators: ``managers`` (who is running tasks) and ``check`` (is all well).

``check`` is for cron and monitoring: exit 0 when all is well, else exit 1
with one line on stderr saying what is wrong.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..console import printable
from ..migrations.check import missing_schema
from ..service import health
from ..state import app_state
from . import taches_cli
from .errors import TaskCommand

#: ``check`` found something wrong (cron mails it; a monitor alerts on it).
EXIT_UNHEALTHY = 1


@taches_cli.command("managers", cls=TaskCommand)
@click.option("--json", "as_json", is_flag=True, help="Print them as a JSON list.")
def managers_command(as_json: bool) -> None:
    """The live managers: host, pid, since when, last seen, queues, max, running tasks."""
    found = health.live_managers()
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("no live manager")
        return
    for line in format_managers(found):
        click.echo(printable(line))


def format_managers(found: list[dict[str, Any]]) -> list[str]:
    now = utcnow()
    lines = [
        f"{'host':<24}{'pid':>8}  {'up':>8}  {'seen':>6}  {'running':>9}  {'executor':<12}queues"
    ]
    for manager in found:
        up = _ago(now, manager["started_at"])
        seen = _ago(now, manager["seen_at"])
        running = f"{manager['running']}/{manager['max']}"
        queues = ", ".join(manager["queues"]) or "all"
        lines.append(
            f"{manager['hostname'][:23]:<24}{manager['pid']:>8}  {up:>8}  {seen:>6}"
            f"  {running:>9}  {manager['executor']:<12}{queues}"
        )
    return lines


def _ago(now: datetime, iso: str) -> str:
    seconds = max(0.0, (now - datetime.fromisoformat(iso)).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@taches_cli.command("check", cls=TaskCommand)
@click.option(
    "--max-ready-age",
    type=click.FloatRange(min=0),
    metavar="S",
    help="Unhealthy when the oldest ready task has waited more than S seconds.",
)
@click.option(
    "--max-failed",
    type=click.IntRange(min=0),
    metavar="N",
    help="Unhealthy when more than N tasks FAILED within --within minutes.",
)
@click.option(
    "--within",
    type=click.FloatRange(min=0, min_open=True),
    metavar="M",
    default=60.0,
    show_default=True,
    help="Minutes --max-failed counts over.",
)
def check_command(max_ready_age: float | None, max_failed: int | None, within: float) -> None:
    """Exit 0 when all is well; else exit 1 with one line saying what is wrong.

    Wrong: no live manager; with --max-ready-age, a ready task waiting too
    long; with --max-failed, too many failures lately.
    """
    limits = health.Limits(max_ready_age, max_failed, within)
    try:
        found = health.problems(limits)
    except SQLAlchemyError as exc:  # a monitor wants the one line, not a traceback
        found = [_unreadable(exc)]
    if not found:
        click.echo("ok")
        return
    click.echo(printable("; ".join(found)), err=True)
    sys.exit(EXIT_UNHEALTHY)


def _unreadable(exc: SQLAlchemyError) -> str:
    """Why the figures could not be read: a missing table says how to create it."""
    missing = missing_schema(app_state().store.engine)
    if missing is not None:
        return str(missing)
    return f"cannot read the database: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"
