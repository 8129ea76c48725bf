"""The manager (``flask taches start``): claim ready tasks, run each in its own process.

It lives ``loop`` x ``sleep`` seconds (so that cron every minute keeps one
alive) or until stopped with ``forever``. Within that time it claims whenever
one of its ``slots`` (``--concurrency``) is free and a task is ready, in
batches, never more than ``max_running`` RUNNING across every manager of the
database (the store enforces it inside the claim). An idle manager sleeps on
:class:`~.wakeups.Wakeups`, so a new task, a child's exit or a stop request
wakes it at once.

Each pass of the loop reaps and settles the children (:mod:`.children`),
carries out the stops whose time has come (:mod:`.supervision`), writes the
pids no claim took along (:mod:`.pids`), every ``min(TACHES_HEARTBEAT,
sleep)`` compares the children with their rows and rescues the tasks no live
manager looks after (:mod:`.orphans`), adds the tasks of the schedules'
due slots (:mod:`.scheduling`), then claims or sleeps.

SIGTERM or SIGINT stops the claiming; running tasks get ``TACHES_DRAIN_GRACE``
seconds to finish (a second signal cuts it short), then SIGTERM, then SIGKILL
after ``TACHES_KILL_GRACE``. Children live in sessions of their own, so a
``kill -9`` of the manager leaves them running to their end.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Iterator
from types import FrameType

from flask import Flask

from ..processes import handling, reset_to_default
from ..state import app_state
from ..status import Status
from ..store import Claimed, Store
from .children import Children
from .executors import Child, ClaimRules, Executor, ForkExecutor, PoolExecutor, SubprocessExecutor
from .log import logger
from .options import ManagerOptions
from .orphans import kill_overdue_orphans, rescue_dead_tasks
from .outages import Outages
from .pacing import next_poll_in
from .pids import PendingPids
from .preloading import Preloader
from .reexec import PreviousImage
from .registry import Registration
from .retention import Retention
from .scheduling import Scheduler
from .stops import HANDLED, SIGCHLD, StopRequests, hold_requests
from .supervision import SupervisedChild
from .wakeups import Wakeups

MIN_WAIT = 0.002  # seconds: the loop never spins faster than this
CHILD_POLL = 0.05  # seconds between child checks where no SIGCHLD wakes us (Windows, threads)
DB_ERROR_BACKOFF = 1.0  # seconds before claiming again after a database error


class Manager:
    """One manager process. Build it in an app context; :meth:`run` it in the main thread."""

    def __init__(
        self,
        app: Flask,
        options: ManagerOptions,
        *,
        executor: Executor | None = None,
        app_import_path: str | None = None,
        hostname: str | None = None,
    ) -> None:
        self.app = app
        self.options = options
        state = app_state(app)
        self.store: Store = state.store
        self.hostname = hostname or socket.gethostname()
        self.children = Children(self.store, options)
        self.wakeups = Wakeups(
            self.store,
            queues=options.queues or None,
            max_running=options.max_running,
            poll=options.poll,
        )
        # The listener's connection predates the outage: listen anew once it is over.
        self.outages = Outages(self.store, lambda: len(self.children), self.wakeups.listen)
        self.preloader = Preloader(self.store, state.allowed_modules)
        self.scheduler = Scheduler(self.store, state.schedules() if options.schedules else [])
        self.pids = PendingPids()
        self.previous = PreviousImage.from_environment()  # its task processes (SIGHUP)
        self.claimed_count = 0
        self._stops = StopRequests()
        self._drain_until: float | None = None
        self._sigchld = False  # a SIGCHLD handler wakes the loop when a child exits
        self._last_full = False  # the last claim took all it asked for
        #: Free slots a backlog waits for before the next claim.
        self._batch = max(1, options.slots // 2)
        self.executor = executor or self._make_executor(app_import_path)
        self.registration = Registration(self.store, self.hostname, options, self.executor.name)
        self.retention = Retention.of_manager(self.store, app, self.hostname)

    def _make_executor(self, app_import_path: str | None) -> Executor:
        child_verbosity = max(0, self.options.verbosity - 1)
        if self.options.executor == "subprocess":
            return SubprocessExecutor(app_import_path, verbosity=child_verbosity)
        if self.options.executor == "pool":
            opts = self.options
            return PoolExecutor(
                self.app,
                verbosity=child_verbosity,
                after_fork=[self._in_child],
                wake_fd=self.wakeups.signal_fd,
                limits=opts.child_limits,
                claim_rules=ClaimRules(opts.max_running, opts.queues or None, self.hostname),
            )
        return ForkExecutor(self.app, verbosity=child_verbosity, after_fork=[self._in_child])

    @property
    def forks(self) -> bool:
        return self.executor.forks

    # -- lifetime ------------------------------------------------------------------------

    def run(self) -> int:
        """Claim and supervise until the lifetime ends or a stop is asked; 0 when clean."""
        if self.forks:
            self.preloader.warm_store()
        # Children then share the warm manager's objects without the GC writing to them.
        gc.freeze()
        started = time.monotonic()
        lifetime = self.options.lifetime
        end = None if lifetime is None else started + lifetime
        logger.info(
            "manager %s on %s: max %s (%s here), executor %s, %s",
            os.getpid(),
            self.hostname,
            self.options.max_running,
            self.options.slots,
            self.executor.name,
            "until stopped" if end is None else f"for {end - started:g} s",
            extra={"action": "manager_start", "tache_id": None},
        )
        self.registration.join()
        with self._signals():
            try:
                self.outages.survive(lambda: self._loop(end), self.wakeups.sleep)
            finally:
                self.wakeups.stop_listening()
                self.executor.close()
                self.registration.leave()
        logger.info(
            "manager %s done: %s task(s) claimed in %.1f s; CPU %.2f s here, %.2f s in tasks",
            os.getpid(),
            self.claimed_count,
            time.monotonic() - started,
            *_cpu_seconds(),
            extra={"action": "manager_stop", "tache_id": None},
        )
        return 0

    def request_stop(self) -> None:
        """Stop as SIGTERM would (for callers running the manager in a thread)."""
        self._stops.asked += 1
        self.wakeups.poke()

    def close(self) -> None:
        """Release the wake-up socket (after :meth:`run`)."""
        self.wakeups.close()

    # -- the loop ------------------------------------------------------------------------

    def _loop(self, end: float | None) -> None:
        opts = self.options
        self.wakeups.listen()
        next_check = 0.0
        next_poll = 0.0
        more = True  # the last claim was full: more may be waiting
        while True:
            reaped = self._reap()
            now = time.monotonic()
            self.children.enforce(now, self._drain_until)
            if self.pids.due is not None and now >= self.pids.due:
                self._flush_pids(now)
            if now >= next_check:
                self.children.compare_with_rows()
                self._rescue()
                self.registration.beat(len(self.children))
                self.retention.run_due(now)
                next_check = time.monotonic() + opts.check_every
            self.previous.enforce(now, self._drain_until, opts.kill_grace)
            claiming = self._claiming(now, end)
            self.executor.may_claim(claiming)
            if self.reexec_ready:
                return  # its children run on; the CLI re-executes it (reexec.py)
            if not claiming and not (self.children or self.previous or self.children.unsettled):
                return
            if claiming and now >= self.scheduler.due:
                more = self.scheduler.add_due() > 0 or more
            free = opts.slots - len(self.children)
            claimable = claiming and free > 0 and not self._gathering(free)
            if claimable and (more or reaped or now >= next_poll):
                got = self._claim(free)
                delay = self._poll_in(got) if got >= 0 else self.outages.retry_in()
                next_poll = time.monotonic() + delay
                more = got == free
                if got > 0:
                    continue
            wait = self._wait_for(now, end if claiming else None, next_check)
            if claiming:
                wait = min(wait, max(MIN_WAIT, self.scheduler.due - now))
            if claimable:
                wait = min(wait, max(0.0, next_poll - now))
                more = self.wakeups.wait_for_work(wait)
            else:
                self.wakeups.sleep(wait)
            self.wakeups.drain()

    def _poll_in(self, got: int) -> float:
        return next_poll_in(self.store, self.options, got=got, trusted=self.wakeups.trusted)

    def _gathering(self, free: int) -> bool:
        """A backlog waits for half the slots to be free before the next claim.

        Each claim round and fork costs the manager page copies (its children
        share its memory), so fewer, larger rounds cost less per task.
        """
        return self._last_full and free < self._batch and bool(self.children)

    def _claiming(self, now: float, end: float | None) -> bool:
        stops = self._stops
        if stops.asked > stops.handled and stops.reexec:
            stops.handled = stops.asked  # no drain: the children run on past the exec
            stops.announce(len(self.children) + len(self.previous), None)
        if stops.asked > stops.handled:
            # The first request drains; a second one cuts the grace short.
            grace = self.options.drain_grace if not stops.handled else 0.0
            stops.handled = stops.asked
            self._drain_until = min(self._drain_until or float("inf"), now + grace)
            stops.announce(len(self.children), max(0.0, self._drain_until - time.monotonic()))
        if stops.handled:
            return False
        return end is None or now < end

    def _wait_for(self, now: float, end: float | None, next_check: float) -> float:
        """Seconds until the next thing the loop must do by itself."""
        due = [next_check]
        if self.pids.due is not None:
            due.append(self.pids.due)
        if end is not None:
            due.append(end)
        if self._drain_until is not None and self.children:
            due.append(self._drain_until)
        signal_due = self.children.next_due()
        if signal_due is not None:
            due.append(signal_due)
        due += self.previous.due(self._drain_until, self.options.kill_grace)
        wait = min(due) - now
        if (self.children or self.previous) and not self._sigchld:
            wait = min(wait, CHILD_POLL)
        if self.children.unsettled:
            wait = min(wait, DB_ERROR_BACKOFF)
        return max(MIN_WAIT, wait)

    def _reap(self) -> int:
        """Reap and settle the children that exited; how many exited."""
        exited = self.children.reap()
        self.pids.forget(supervised.claimed.id for supervised in exited)
        for child in (started := self.executor.self_started()):
            self._claimed(child.claimed, f" by process {child.pid} after its last task")
            self._supervise(child)
        # Such a child may have posted that task's end too, its wake-up spent: read on.
        return len(exited) + (self._reap() if started else self.previous.reap())

    def _rescue(self) -> None:
        mine = self.children.pids()
        rescue_dead_tasks(
            self.store,
            hostname=self.hostname,
            heartbeat_timeout=self.options.heartbeat_timeout,
            mine=mine,
        )
        kill_overdue_orphans(
            self.store, hostname=self.hostname, kill_grace=self.options.kill_grace, mine=mine
        )

    # -- claiming and starting -----------------------------------------------------------

    def _claim(self, free: int) -> int:
        """Claim up to ``free`` tasks and start them; the number claimed, -1 on error."""
        opts = self.options
        pids = self.pids.snapshot()  # they ride along in the claim's transaction
        try:
            claimed = self.store.claim_batch(
                free,
                max_running=opts.max_running,
                queues=opts.queues or None,
                hostname=self.hostname,
                started=pids or None,
                expect_work=self._last_full,
            )
        except self.outages.errors as exc:
            self.outages.report(exc, "claim failed", "claim_error")
            self._last_full = False
            return -1
        self.outages.succeeded()
        self.pids.written(pids)
        self._last_full = len(claimed) == free
        for task in claimed:
            self._claimed(task)
            self._start(task)
        return len(claimed)

    def _claimed(self, task: Claimed, how: str = "") -> None:
        self.claimed_count += 1
        args = (task.id, task.attempt, how, task.method)
        extra = {"action": "claim", "tache_id": task.id}
        logger.info("claimed task %s (attempt %s)%s: %s", *args, extra=extra)

    def _flush_pids(self, now: float) -> None:
        """Write the pids no claim took along (the manager is idle, or its slots are full)."""
        pids = self.pids.snapshot()
        try:
            self.store.record_pids(pids, self.hostname)
        except self.outages.errors as exc:
            logger.error(
                "cannot record the pids of started tasks: %s",
                exc,
                extra={"action": "start_error", "tache_id": None},
            )
            self.pids.retry_at(now + DB_ERROR_BACKOFF)
            return
        self.pids.written(pids)

    def _start(self, task: Claimed) -> None:
        if self.forks:
            self.preloader.import_module_of(task.method)
        try:
            child = self.executor.start(task)
        except OSError as exc:
            message = f"the manager could not start the task's process: {exc}"
            logger.error(message, extra={"action": "start_error", "tache_id": task.id})
            self.store.end_on_behalf(task.id, task.attempt, Status.INTERRUPTED, message)
            return
        if self.forks:
            self.pids.add(task.id, task.attempt, child.pid, child.started)
        self._supervise(child)
        logger.info(
            "started task %s in process %s (%s)",
            task.id,
            child.pid,
            self.executor.name,
            extra={"action": "start", "tache_id": task.id},
        )

    def _supervise(self, child: Child) -> None:
        supervised = SupervisedChild(child)
        if self.forks:
            supervised.arm_timeout(child.started, self.options)  # a fork starts the task at once
        self.children.add(supervised)

    # -- signals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """Stop on SIGTERM/SIGINT, re-execute on SIGHUP (:mod:`.stops`); wake on SIGCHLD.
        Only the main thread can have handlers."""
        with handling(self._stops.handlers(self._on_child)) as installed:
            if not installed:
                yield
                return
            self._sigchld = SIGCHLD is not None
            old_fd = signal.set_wakeup_fd(self.wakeups.signal_fd, warn_on_full_buffer=False)
            hold_requests(False)  # a stop sent while a re-executed image started arrives now
            try:
                yield
            finally:
                signal.set_wakeup_fd(old_fd)
                self._sigchld = False

    @property
    def reexec_ready(self) -> bool:
        """SIGHUP asked, and the rows need nothing more of this image: re-execute now."""
        asked = self._stops.reexec and self._stops.handled > 0
        return asked and self.pids.due is None and not self.children.unsettled

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        """Nothing: the wake-up socket already woke the loop."""

    def _in_child(self) -> None:
        """First thing in a forked child: nothing of the manager's signal plumbing."""
        reset_to_default(HANDLED)
        self.wakeups.close()


def _cpu_seconds() -> tuple[float, float]:
    """CPU used by this process, and by the children it has reaped."""
    times = os.times()
    return times[0] + times[1], times[2] + times[3]
