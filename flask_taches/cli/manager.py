"""Commands of the manager: ``start`` and ``stats``.

Both print what tasks and users wrote (methods, queues, error texts): through
:func:`~flask_taches.console.printable`, so none of it drives the terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import current_app
from flask.cli import ScriptInfo

from ..console import printable
from ..exceptions import ConfigurationError
from ..migrations.check import missing_schema
from ..proctitle import manager_title, set_title
from ..state import app_state
from ..status import Status
from ..verbosity import log_level
from ..worker import EXECUTORS, Manager, ManagerOptions
from ..worker.reexec import reexec
from . import taches_cli

#: Format of the manager's lines on stdout (one per claim, start and end with -v).
LINE_FORMAT = "%(asctime)s %(message)s"


def manager_log_level(verbosity: int) -> int:
    """``-v`` count to a level: warnings only, then claims/starts/ends, then debug.

    ``-vv`` passes the tasks' own output through (as ``run -vv``); the manager's
    own debug lines wait for ``-vvv``.
    """
    return log_level(verbosity, debug_from=3)


class PrintableFormatter(logging.Formatter):
    """The manager's lines with every control character escaped (a traceback keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return printable(super().formatException(ei), newlines=True)

    def formatStack(self, stack_info: str) -> str:
        return printable(super().formatStack(stack_info), newlines=True)


@contextmanager
def manager_output(verbosity: int) -> Iterator[None]:
    """The manager's log records on stdout, at the level ``-v`` asks, for this command."""
    log = logging.getLogger("flask_taches.manager")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(PrintableFormatter(LINE_FORMAT))
    previous = log.level
    log.setLevel(manager_log_level(verbosity))
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


@taches_cli.command("start")
@click.option("--loop", type=click.IntRange(min=1), help="Rounds to live for [TACHES_LOOP: 10].")
@click.option("--sleep", type=click.FloatRange(min=0), help="Seconds per round [TACHES_SLEEP: 6].")
@click.option(
    "--max",
    "max_running",
    type=click.IntRange(min=1),
    help="Most tasks RUNNING at once, all managers together [TACHES_MAX: 5].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Most tasks this manager runs at once, within --max [TACHES_CONCURRENCY: --max].",
)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Serve only this queue; repeat for several [TACHES_QUEUES: all].",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    help=(
        "fork: a child of this warm process per task; pool: long-lived children of it; "
        "subprocess: `flask taches run` [TACHES_EXECUTOR]."
    ),
)
@click.option(
    "--forever", is_flag=True, help="Run until SIGTERM/SIGINT, then drain [TACHES_DRAIN_GRACE]."
)
@click.option(
    "--no-schedules",
    is_flag=True,
    help="Leave the schedules' slots to the other managers; this one only runs tasks.",
)
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    help="-v: one line per claim, start and end; -vv: the tasks' own output as well.",
)
def start(
    loop: int | None,
    sleep: float | None,
    max_running: int | None,
    concurrency: int | None,
    queues: tuple[str, ...],
    executor: str | None,
    forever: bool,
    no_schedules: bool,
    verbosity: int,
) -> None:
    """Run the manager: claim ready tasks and run each in a process of its own.

    It lives about LOOP x SLEEP seconds, claiming whenever a slot is free and a
    task is ready, then waits for the tasks it started: a cron entry every
    minute keeps one alive. With --forever it runs until SIGTERM or SIGINT,
    then stops claiming and lets running tasks finish.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        options = ManagerOptions.from_config(
            app.config,
            loop=loop,
            sleep=sleep,
            max_running=max_running,
            concurrency=concurrency,
            queues=tuple(queues) or None,
            executor=executor,
            forever=forever or None,
            verbosity=verbosity,
            schedules=False if no_schedules else None,
        )
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    missing = missing_schema(app_state(app).store.engine)  # None too if the database is down
    if missing is not None:  # else it would log the error every second
        raise missing
    info = click.get_current_context().find_object(ScriptInfo)
    app_import_path = info.app_import_path if info is not None else None
    with manager_output(verbosity):
        try:
            manager = Manager(app, options, app_import_path=app_import_path)
        except (OSError, ConfigurationError) as exc:  # fork where there is none, a bad setting
            raise click.ClickException(str(exc)) from None
        queues = options.queues or ()
        set_title(
            manager_title(app_import_path, options.max_running, manager.executor.name, queues)
        )
        try:
            code = manager.run()
        finally:
            manager.close()
        if manager.reexec_ready:  # SIGHUP: this process becomes a new manager
            reexec(manager)
            code = 1  # the exec failed
    if code:
        sys.exit(code)


@taches_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats(as_json: bool) -> None:
    """Counts by status and queue, the oldest ready task's wait, recent throughput."""
    figures = app_state().service.stats()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    for line in format_stats(figures):
        click.echo(printable(line))


def format_stats(figures: dict[str, Any]) -> list[str]:
    """The human form of the service's ``stats()``."""
    queues = sorted(figures["by_queue"])
    header = f"{'status':<12}{'total':>8}" + "".join(f"{q[:14]:>16}" for q in queues)
    lines = [header]
    for status in Status:
        row = f"{status.value:<12}{figures['by_status'].get(status.value, 0):>8}"
        row += "".join(f"{figures['by_queue'][q].get(status.value, 0):>16}" for q in queues)
        lines.append(row)
    age = figures["oldest_to_run_age"]
    lines.append("")
    lines.append(
        "oldest ready TO_RUN: none"
        if age is None
        else f"oldest ready TO_RUN: waiting for {_duration(age)}"
    )
    for window in figures["throughput"]:
        detail = ", ".join(f"{s} {n}" for s, n in sorted(window["by_status"].items()))
        lines.append(
            f"ended in the last {window['minutes']:>2} min: {window['ended']:>7} "
            f"({window['per_minute']:g}/min)" + (f"  {detail}" if detail else "")
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
