"""How the call of a task ended: its return value judged, its exception, its stop.

:func:`call_task` calls the task inside the attempt's :class:`StopState` and
turns however it came back into an :class:`Outcome`. A stop decided while the
task ran (cancel, timeout, fencing, a signal) is carried in the outcome and
wins over it when the end is recorded.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import RetryRequested
from ..lifecycle import LogEntry
from ..status import Status
from ..store.records import Asked
from .live import entry_now
from .stopping import Stop, StopState, TacheStopped

RESULT_REPR_LIMIT = 2000  # characters kept of a result that is not JSON

#: Frames of flask-taches itself are cut from the top of a task's traceback.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


@dataclass
class Outcome:
    """How the call ended, before the stop decided meanwhile is applied."""

    status: Status
    result: Any = None
    entries: list[LogEntry] = field(default_factory=list)
    #: The stop decided while the task was running (it wins over the outcome).
    stop: Stop | None = None
    #: False when another attempt would fail the same way (a refused or missing
    #: method, a parameter nothing provides, an exception not in ``retry_on``):
    #: no retry is scheduled.
    retry: bool = True
    #: The task asked for a retry itself (``tache.retry``).
    asked: Asked | None = None


class Unresolvable(Exception):
    """The method or an argument could not be found; the cause says which."""


def call_task(
    state: StopState,
    resolve: Callable[[], Callable[[], Any]],
    retries: Callable[[BaseException], bool] = lambda exc: True,
) -> Outcome:
    """Resolve and call the task in this thread, and say how it ended.

    ``retries(exc)`` says whether an attempt that raised ``exc`` may be
    retried (the task's ``retry_on``).
    """
    try:
        try:
            state.enter_task()
            value = resolve()()
        finally:
            state.leave_task()
    except TacheStopped:
        outcome = Outcome(Status.INTERRUPTED)
    except KeyboardInterrupt:
        stop = Stop(Status.INTERRUPTED, "interrupted by KeyboardInterrupt", "warning")
        outcome = Outcome(Status.INTERRUPTED, stop=stop)
    except Unresolvable as exc:
        entries = [entry_now("error", f"{exc.__cause__}; not retried")]
        outcome = Outcome(Status.FAILED, entries=entries, retry=False)
    except RetryRequested as exc:
        entries = [entry_now("info", f"the task asked for a retry: {exc}")]
        outcome = Outcome(Status.FAILED, entries=entries, asked=Asked(exc.delay))
    except BaseException as exc:
        outcome = Outcome(Status.FAILED, entries=[exception_entry(exc)])
        if not retries(exc):
            note = f"{type(exc).__name__} is not in the task's retry_on: not retried"
            outcome.entries.append(entry_now("warning", note))
            outcome.retry = False
    else:
        outcome = judge(value)
    # Again: an interrupt landing just before the first call skipped it.
    outcome.stop = state.leave_task() or outcome.stop
    if outcome.stop is None and outcome.status is Status.INTERRUPTED:
        outcome.entries.append(entry_now("warning", "the task raised TacheStopped itself"))
    return outcome


def judge(value: Any) -> Outcome:
    """The contract: False fails; None, True or a JSON value completes (kept in result)."""
    if value is False:
        return Outcome(Status.FAILED, entries=[entry_now("error", "the task returned False")])
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        text = repr(value)[:RESULT_REPR_LIMIT]
        note = f"the result is not JSON ({exc}); its repr() was kept instead"
        return Outcome(Status.COMPLETED, result=text, entries=[entry_now("warning", note)])
    return Outcome(Status.COMPLETED, result=value)


def exception_entry(exc: BaseException) -> LogEntry:
    """The exception as a log entry; ``details`` is its traceback, from the task's code on."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(PACKAGE_DIR):
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    return entry_now("error", f"{type(exc).__name__}: {exc}", text)
