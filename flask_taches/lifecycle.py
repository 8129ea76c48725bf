"""The task state machine, as pure functions over plain values.

Nothing here reads the clock, the database or a random source of its own: the
caller passes ``now`` (and, for retries, a ``random.Random``), and gets a plan
back: the status to store, the log entries to append, what becomes of the
next task of a chain. The store applies plans inside its transactions; the
unit tests check them without a database.

The rules:

* **How an attempt ends.** COMPLETED stays COMPLETED. FAILED or INTERRUPTED
  becomes CANCELLED when a cancel was asked meanwhile (the cancel wins: the
  task's process ended before acting on it); else TO_RUN with a backed-off
  ``run_at`` while attempts remain (and a retry makes sense); else it stays.
* **Chains.** Once the attempt's end is final, the next task is released
  (COMPLETED) or the rest of the chain is cancelled with a log saying why.
* **Cancel.** A RUNNING task only gets its flag raised (its own process stops
  itself, on whatever host); any other unfinished task is CANCELLED at once.
* **Retries asked for.** A task may end its attempt asking for another
  (``tache.retry(delay)``): TO_RUN after ``delay`` (the backoff when None)
  while attempts remain, else FAILED saying none was left. An exception not
  in the task's ``retry_on`` fails without retry.
* **Restart.** A finished task goes back to TO_RUN with a fresh round of its
  ``max_attempts``: the attempt count goes on (so the fencing of a late
  process still holds) and ``restart_base`` remembers where the round began;
  ``max_attempts`` is never changed, and a future ``run_at`` is kept.
* **Rescue.** A RUNNING task is dead when its heartbeat is too old, unless its
  pid is alive on this very host, or when its pid on this host is gone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .status import Status

#: Seconds: the backoff stops doubling here (the jitter then adds or takes up to a quarter).
MAX_RETRY_DELAY = 6 * 3600.0
#: The retry delay is the backoff times a factor drawn in this range (jitter).
JITTER = (0.75, 1.25)
#: Who a cancel is attributed to when nobody was named.
NOBODY = "someone"

LogEntry = dict[str, Any]


def log_entry(level: str, message: str, at: datetime, details: Any = None) -> LogEntry:
    """One entry of a task's ``logs``, as ``Tache.log`` writes them."""
    return {"level": level, "message": message, "details": details, "at": at.isoformat()}


def retry_delay(attempt: int, base: float, rng: random.Random) -> float:
    """Seconds before retry number ``attempt`` (1-based): base x 2^(n-1), with jitter."""
    delay = min(base * (2 ** max(0, attempt - 1)), MAX_RETRY_DELAY)
    return delay * rng.uniform(*JITTER)


# -- how an attempt ends ------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    """What the state machine needs of a RUNNING row."""

    id: int
    attempts: int
    max_attempts: int
    next_id: int | None = None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    #: Attempts made before the last restart: ``max_attempts`` counts those after.
    restart_base: int = 0

    @classmethod
    def of(cls, row: Any) -> Running:
        """From a row mapping (``row["attempts"]`` ...)."""
        return cls(
            id=int(row["id"]),
            attempts=int(row["attempts"] or 0),
            max_attempts=int(row["max_attempts"] or 1),
            next_id=row["next_id"],
            cancel_requested_at=row["cancel_requested_at"],
            cancel_requested_by=row["cancel_requested_by"],
            restart_base=int(row.get("restart_base") or 0),
        )

    @property
    def round_attempt(self) -> int:
        """This attempt's number in the current round (since the last restart)."""
        return self.attempts - self.restart_base


@dataclass(frozen=True)
class ChainStep:
    """What becomes of the tasks after this one in its chain."""

    next_id: int
    #: True: the next task becomes TO_RUN; False: the rest of the chain is cancelled.
    release: bool
    #: Logged on each cancelled task (when not released).
    reason: str = ""
    #: Logged instead when the next task is a group's callback.
    group_reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class EndPlan:
    """The end of an attempt, decided."""

    status: Status
    entries: tuple[LogEntry, ...] = ()
    #: Set when a retry is scheduled (``status`` is then TO_RUN).
    run_at: datetime | None = None
    chain: ChainStep | None = None

    @property
    def retrying(self) -> bool:
        return self.status is Status.TO_RUN


def end_attempt(
    row: Running,
    ended: Status,
    *,
    now: datetime,
    retry_base: float,
    rng: random.Random,
    retry: bool = True,
    retry_in: float | None = None,
    asked: bool = False,
) -> EndPlan:
    """How an attempt that ``ended`` as COMPLETED, FAILED or INTERRUPTED is recorded.

    ``retry`` False says another attempt would fail the same way (the method
    cannot be resolved or injected, or the exception is not in ``retry_on``):
    no retry is scheduled. ``asked``: the task asked for a retry itself
    (``tache.retry``), in ``retry_in`` seconds (None: the backoff).
    """
    if ended in (Status.FAILED, Status.INTERRUPTED):
        if row.cancel_requested_at is not None:
            asker = row.cancel_requested_by or NOBODY
            note = (
                f"cancelled by {asker}: attempt {row.attempts} ended {ended.value} "
                "before acting on it, so it is not retried"
            )
            return _final(row, Status.CANCELLED, (log_entry("warning", note, now),))
        left = row.round_attempt < row.max_attempts
        if retry and left:
            delay = (
                retry_delay(row.round_attempt, retry_base, rng) if retry_in is None else retry_in
            )
            why = "asked for a retry" if asked else f"ended {ended.value}"
            note = (
                f"attempt {row.round_attempt} of {row.max_attempts} {why}; retrying in {delay:.1f}s"
            )
            return EndPlan(
                Status.TO_RUN,
                (log_entry("warning", note, now),),
                run_at=now + timedelta(seconds=max(0.0, delay)),
            )
        if asked:
            note = (
                f"the task asked for a retry, but attempt {row.round_attempt} of "
                f"{row.max_attempts} was its last: FAILED"
            )
            return _final(row, Status.FAILED, (log_entry("error", note, now),))
    if ended is Status.COMPLETED and row.cancel_requested_at is not None:
        return _final(row, ended, (_too_late(row, now),))
    return _final(row, ended, ())


def _too_late(row: Running, now: datetime) -> LogEntry:
    """The cancel asked of an attempt that completed before acting on it."""
    asked = row.cancel_requested_at
    when = asked.isoformat(timespec="seconds") if asked is not None else "?"
    note = (
        f"cancel asked by {row.cancel_requested_by or NOBODY} at {when} came too late: "
        f"attempt {row.attempts} had completed first"
    )
    return log_entry("warning", note, now)


def _final(row: Running, status: Status, entries: tuple[LogEntry, ...]) -> EndPlan:
    return EndPlan(status, entries, chain=after_end(row.id, row.next_id, status))


def after_end(tache_id: int, next_id: int | None, ended: Status) -> ChainStep | None:
    """The next task of a chain once task ``tache_id`` has finally ``ended``."""
    if next_id is None:
        return None
    if ended is Status.COMPLETED:
        return ChainStep(next_id, release=True)
    reason = f"cancelled: task {tache_id} before it in the chain ended {ended.value}"
    group = f"cancelled: task {tache_id} of its group ended {ended.value}"
    return ChainStep(next_id, release=False, reason=reason, group_reason=group)


def after_delete(tache_id: int, next_id: int) -> ChainStep:
    """The tasks waiting on a deleted one would wait forever: they are cancelled."""
    reason = f"cancelled: task {tache_id} before it in the chain was deleted"
    group = f"cancelled: task {tache_id} of its group was deleted"
    return ChainStep(next_id, release=False, reason=reason, group_reason=group)


def group_complete(waits_for: int | None) -> bool:
    """A group's callback runs once its count of members not completed reaches 0.

    ``waits_for`` is the count after this member's completion was taken off;
    None is a chain's next task, released by its one predecessor.
    """
    return waits_for is None or waits_for <= 0


def previous_value(waits_for: int | None, results: list[Any]) -> Any:
    """What the next task gets as ``previous``: a chain's one result, a group's list."""
    if waits_for is None:
        return results[-1] if results else None
    return results


def released_run_at(run_at: datetime | None, now: datetime) -> datetime:
    """A released successor runs now, or at its own ``run_at`` if that is later."""
    return run_at if run_at is not None and run_at > now else now


# -- cancel and restart -----------------------------------------------------------------


@dataclass(frozen=True)
class CancelPlan:
    """What a cancel does to a task that is not finished."""

    #: CANCELLED at once, or RUNNING: only the flag is raised, its process stops itself.
    status: Status
    asker: str
    entries: tuple[LogEntry, ...] = ()
    chain: ChainStep | None = None

    @property
    def flag_only(self) -> bool:
        return self.status is Status.RUNNING


def cancel(
    tache_id: int, status: Status, next_id: int | None, who: str | None, now: datetime
) -> CancelPlan | None:
    """The plan for cancelling a task in ``status``; None when it is finished already."""
    if status.is_finished:
        return None
    asker = who or "anonymous"
    if status is Status.RUNNING:
        return CancelPlan(Status.RUNNING, asker)
    entry = log_entry("warning", f"cancelled by {asker} at {now.isoformat()}", now)
    return CancelPlan(
        Status.CANCELLED, asker, (entry,), chain=after_end(tache_id, next_id, Status.CANCELLED)
    )


@dataclass(frozen=True)
class RestartPlan:
    """A finished task back to TO_RUN, for a fresh round of its ``max_attempts``."""

    run_at: datetime
    #: The attempt count when the round begins (``restart_base``).
    restart_base: int
    entries: tuple[LogEntry, ...]


def restart(
    status: Status,
    attempts: int,
    max_attempts: int,
    now: datetime,
    run_at: datetime | None = None,
) -> RestartPlan | None:
    """The plan for restarting a task in ``status``; None when it is not finished.

    The attempt count is kept (a late process of an old attempt stays fenced
    out) and becomes the round's base: the task gets ``max_attempts`` attempts
    again, counted from here, with ``max_attempts`` itself unchanged. A
    ``run_at`` still in the future is kept (a restart does not run early a
    task that was cancelled before its time).
    """
    if not status.is_finished:
        return None
    when = run_at if run_at is not None and run_at > now else now
    note = f"restarted: up to {max_attempts} attempt(s) from attempt {attempts + 1}"
    if when > now:
        note += f", not before {when.isoformat()}"
    return RestartPlan(when, attempts, (log_entry("info", note, now),))


# -- the rescue -----------------------------------------------------------------------


@dataclass(frozen=True)
class Silent:
    """What the rescue knows of a RUNNING row it may declare dead."""

    heartbeat_at: datetime | None
    pid: int | None
    hostname: str | None


@dataclass(frozen=True)
class Verdict:
    """A RUNNING task judged dead: why, and whether a newer heartbeat would save it."""

    reason: str
    #: Judged on its silence: a heartbeat at or after this moment proves it alive.
    stale_before: datetime | None


def rescue_verdict(
    row: Silent,
    *,
    now: datetime,
    heartbeat_timeout: float,
    here: str | None,
    is_alive: Callable[[int], bool],
) -> Verdict | None:
    """Is this RUNNING task dead? None when it lives (or cannot be told dead).

    On the task's own host (``here``) a live pid outweighs a silent heartbeat:
    a task holding the GIL in a long C call misses beats while it works, and
    its timeout stops it, not its silence.
    """
    cutoff = now - timedelta(seconds=heartbeat_timeout)
    local = row.pid is not None and here is not None and row.hostname == here
    if row.heartbeat_at is None or row.heartbeat_at < cutoff:
        if local and row.pid is not None and is_alive(row.pid):
            return None
        if row.heartbeat_at is None:
            return Verdict("RUNNING without any heartbeat", cutoff)
        silent = (now - row.heartbeat_at).total_seconds()
        return Verdict(f"no heartbeat for {silent:.1f}s (limit {heartbeat_timeout:g}s)", cutoff)
    if local and row.pid is not None and not is_alive(row.pid):
        return Verdict(f"process {row.pid} on {here} is gone without recording an end", None)
    return None


def still_dead(verdict: Verdict, heartbeat_at: datetime | None) -> bool:
    """Re-checked under the row lock: a heartbeat written since the verdict saves it."""
    if verdict.stale_before is None or heartbeat_at is None:
        return True
    return heartbeat_at < verdict.stale_before
