"""``flask taches schedules``: the periodic tasks, their last and next slot."""

from __future__ import annotations

import json
from typing import Any

import click

from ..console import printable
from ..state import app_state
from . import taches_cli
from .errors import TaskCommand


@taches_cli.command("schedules", cls=TaskCommand)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def schedules_command(as_json: bool) -> None:
    """List the periodic tasks: when they run, the last slot added, the next one (UTC)."""
    views = app_state().service.schedules()
    if as_json:
        click.echo(json.dumps(views, indent=2, ensure_ascii=False))
        return
    if not views:
        click.echo("no schedule")
        return
    click.echo(f"{'NAME':<24}  {'LAST (UTC)':<19}  {'TASK':>6}  {'NEXT (UTC)':<19}  WHEN")
    for view in views:
        click.echo(printable(_line(view)))


def _line(view: dict[str, Any]) -> str:
    last = _short(view["last_slot"])
    task = f"{view['last_id']}" if view["last_id"] is not None else "-"
    status = f" {view['last_status']}" if view["last_status"] else ""
    line = f"{view['name']:<24}  {last:<19}  {task:>6}  {_short(view['next_slot']):<19}  "
    return f"{line}{view['when']}{status}  {view['method']}"


def _short(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"
