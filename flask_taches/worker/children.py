"""A manager's children: stopped when a deadline comes, compared with their rows, settled.

The task's own process beats and records its end; the manager is the backstop:

* a child that exits without an end recorded ends INTERRUPTED at once, with its
  exit code or signal in the log (and is retried when attempts remain);
* a child past its ``timeout`` + ``TACHES_KILL_GRACE`` (+ a margin) is SIGKILLed
  and ends FAILED; one whose cancel was asked and ignored is SIGKILLed and ends
  CANCELLED; one whose row another manager declared dead is SIGKILLed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from sqlalchemy.exc import SQLAlchemyError

from ..clock import utcnow
from ..signals import finished_elsewhere
from ..store import Store
from .endings import how_they_ended
from .log import logger
from .options import ManagerOptions
from .supervision import BACKSTOP_MARGIN, StopSignal, SupervisedChild, Verdict


class Children:
    """The running children of one manager, by pid, and those reaped but not yet settled."""

    def __init__(self, store: Store, options: ManagerOptions) -> None:
        self.store = store
        self.options = options
        self._running: dict[int, SupervisedChild] = {}
        #: Reaped, waiting for their end to be known (or recorded) again after an error.
        self._unsettled: list[SupervisedChild] = []

    def __len__(self) -> int:
        return len(self._running)

    def __iter__(self) -> Iterator[SupervisedChild]:
        return iter(self._running.values())

    def pids(self) -> set[int]:
        return set(self._running)

    def add(self, supervised: SupervisedChild) -> None:
        self._running[supervised.child.pid] = supervised

    @property
    def unsettled(self) -> bool:
        """Some reaped child's end is still to be known or recorded (a database error)."""
        return bool(self._unsettled)

    def next_due(self) -> float | None:
        """The earliest signal any child is due, None if none is planned."""
        due = [at for at in (s.next_due() for s in self) if at is not None]
        return min(due, default=None)

    # -- reaping and settling ------------------------------------------------------------

    def reap(self) -> list[SupervisedChild]:
        """Collect the children that exited, then settle their rows; those that exited."""
        exited = [s for s in self._running.values() if s.child.poll() is not None]
        for supervised in exited:
            del self._running[supervised.child.pid]
        self._unsettled.extend(exited)
        if self._unsettled:
            self._settle()
        return exited

    def _settle(self) -> None:
        """For each reaped child: its end as recorded, or INTERRUPTED/its verdict if none."""
        pending: list[SupervisedChild] = []
        for supervised, end in zip(
            self._unsettled, how_they_ended(self.store, self._unsettled), strict=True
        ):
            if end is None:
                pending.append(supervised)  # its row could not be read: next pass
            elif not end.unrecorded:
                self._log_end(supervised, end.shown)
            elif not self._record_missing_end(supervised):
                pending.append(supervised)
        self._unsettled = pending

    def _record_missing_end(self, supervised: SupervisedChild) -> bool:
        """Record the end its process left without; False on a database error."""
        task, verdict = supervised.claimed, supervised.end_to_record()
        try:
            final = self.store.end_on_behalf(task.id, task.attempt, verdict.status, verdict.message)
        except SQLAlchemyError:
            return False
        if final is not None:
            finished_elsewhere(task.id, task.attempt, final)
        logger.warning(
            "task %s: %s -> %s",
            task.id,
            verdict.message,
            final.value if final is not None else "ended elsewhere",
            extra={"action": "end", "tache_id": task.id},
        )
        return True

    def _log_end(self, supervised: SupervisedChild, shown: str) -> None:
        child = supervised.child
        logger.info(
            "ended task %s: %s in %.2f s (process %s %s)",
            supervised.claimed.id,
            shown,
            time.monotonic() - child.started,
            child.pid,
            child.describe_end(),
            extra={"action": "end", "tache_id": supervised.claimed.id},
        )

    # -- stopping by time ----------------------------------------------------------------

    def enforce(self, now: float, drain_until: float | None) -> None:
        """Stops decided by time: SIGTERM when a deadline comes, SIGKILL a grace later."""
        if drain_until is not None and now >= drain_until:
            for supervised in self:
                supervised.drain_over(now, self.options)
        for supervised in self:
            step = supervised.advance(now, self.options.kill_grace)
            if step is not None:
                self._carry_out(supervised, step)

    def _carry_out(self, supervised: SupervisedChild, step: StopSignal) -> None:
        if step.record_first is not None:
            self._record_verdict(supervised, step.record_first)
        logger.warning(
            "sending %s to task %s (process %s): %s",
            step.name,
            supervised.claimed.id,
            supervised.child.pid,
            step.why,
            extra={"action": "signal", "tache_id": supervised.claimed.id},
        )
        supervised.child.signal(step.signum)

    def _record_verdict(self, supervised: SupervisedChild, verdict: Verdict) -> None:
        """End the attempt now (fenced); on a database error the reap records it later."""
        task = supervised.claimed
        try:
            final = self.store.end_on_behalf(task.id, task.attempt, verdict.status, verdict.message)
        except SQLAlchemyError as exc:
            logger.error(
                "task %s: cannot record its end yet: %s",
                task.id,
                exc,
                extra={"action": "end_error", "tache_id": task.id},
            )
            return
        if final is not None:
            finished_elsewhere(task.id, task.attempt, final)
            logger.warning(
                "task %s: %s -> %s",
                task.id,
                verdict.message,
                final.value,
                extra={"action": "end", "tache_id": task.id},
            )

    # -- comparing with the rows ---------------------------------------------------------

    def compare_with_rows(self) -> None:
        """Each child against its row: ended elsewhere, superseded, cancel ignored.

        Also beats for the children whose process is not known yet in their
        row, so that a slow start does not look like a dead task.
        """
        if not self._running:
            return
        by_id = {s.claimed.id: s for s in self}
        try:
            states = self.store.attempt_states(list(by_id))
        except SQLAlchemyError as exc:
            logger.error(
                "supervision read failed: %s",
                exc,
                extra={"action": "supervise_error", "tache_id": None},
            )
            return
        opts = self.options
        now, wall = time.monotonic(), utcnow()
        patience = opts.heartbeat + opts.kill_grace + BACKSTOP_MARGIN
        unstarted: dict[int, int] = {}
        for tache_id, supervised in by_id.items():
            state = states.get(tache_id)
            if state is None or not state.is_attempt(supervised.claimed.attempt):
                supervised.release(now, opts)
                continue
            if state.pid is None:
                unstarted[tache_id] = supervised.claimed.attempt
            elif not supervised.timeout_armed:
                supervised.arm_timeout(now, opts)
            asked = state.cancel_requested_at
            if asked is not None and (wall - asked).total_seconds() >= patience:
                supervised.cancel_ignored(now, state.cancel_requested_by or "someone", asked)
        try:
            self.store.beat_for_unstarted(unstarted)
        except SQLAlchemyError as exc:
            logger.error(
                "beat for starting tasks failed: %s",
                exc,
                extra={"action": "supervise_error", "tache_id": None},
            )
