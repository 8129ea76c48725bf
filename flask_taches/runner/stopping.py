"""Who stops the task and who records its end: the stop state of one attempt.

Three parties act on a running attempt: the task's own thread, the watchdog
thread, and the signal handlers (which run in the task's thread, between two
of its bytecodes). :class:`StopState` is what they share: the :class:`Phase`
the task's thread is in, the :class:`Stop` decided for it, if any, and the
transitions between phases, each taken under one lock. The rules it keeps:

* a stop is decided once; a stop decided while the task runs wins over the
  task's own outcome, one decided after it came back does not;
* :class:`TacheStopped` is raised in the task at most once, and only inside
  the task's code;
* the end is recorded by one party only, the first to claim it: the task's
  thread once it is back, or the watchdog when the task ignored its stop.
"""

from __future__ import annotations

import enum
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from ..clock import utcnow
from ..lifecycle import LogEntry, log_entry
from ..processes import Handler
from ..status import Status

#: Sent by the watchdog to the task's main thread to stop it (POSIX only).
INTERRUPT_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
#: Signals from outside that end the attempt INTERRUPTED.
EXTERNAL_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TacheStopped(BaseException):
    """Raised in the task's thread to stop it.

    A ``BaseException`` so that a task's ``except Exception`` lets it through.
    """


@dataclass(frozen=True)
class Stop:
    """Why a running task is being stopped."""

    #: The status to record; None when the attempt was fenced out (record nothing).
    status: Status | None
    message: str
    level: str = "error"

    @property
    def fenced(self) -> bool:
        """The attempt no longer owns its row: nothing may be written for it."""
        return self.status is None

    def entry(self) -> LogEntry:
        """The log entry saying why the task stopped."""
        return log_entry(self.level, self.message, utcnow())


def fenced_out(attempt: int) -> Stop:
    return Stop(None, f"attempt {attempt} no longer owns the row (declared dead elsewhere)")


class Phase(enum.Enum):
    """Where the task's thread is, as far as stopping it goes."""

    #: The task's code has not been entered yet.
    BEFORE_TASK = "before task"
    #: The task's code is running: it may be interrupted.
    IN_TASK = "in task"
    #: TacheStopped was raised in the task (once); it is unwinding.
    INTERRUPTED = "interrupted"
    #: The task's thread came back from the task's code.
    LEFT_TASK = "left task"
    #: Someone is recording the end; nothing changes any more.
    ENDING = "ending"


class StopState:
    """The phase of one attempt and the stop decided for it, under one lock.

    The lock is re-entrant because signal handlers run in the task's thread,
    possibly while that thread already holds it.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._phase = Phase.BEFORE_TASK
        self._stop: Stop | None = None
        self._stop_at: float | None = None  # monotonic time the stop was decided
        #: The stop decided when the task's thread left the task: the one that wins.
        self._stop_on_leaving: Stop | None = None
        #: The thread that signals interrupt, once handlers are installed in it.
        self._target: int | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def stop(self) -> Stop | None:
        return self._stop

    @property
    def fenced(self) -> bool:
        stop = self._stop
        return stop is not None and stop.fenced

    def interruptible_in(self, thread_ident: int | None) -> None:
        """Handlers are installed in that thread: a stop can now interrupt the task."""
        self._target = thread_ident

    def give_up_at(self, grace: float) -> float | None:
        """Monotonic time after which a task deaf to its stop is abandoned, if any.

        Only an interruptible task is abandoned: one that cannot be signalled
        is waited for, and its end recorded once it comes back.
        """
        if self._stop_at is None or self._target is None:
            return None
        return self._stop_at + grace

    # -- deciding a stop -------------------------------------------------------------

    def decide(self, stop: Stop) -> bool:
        """Record why the task stops, unless a reason exists already; True if new."""
        with self._lock:
            if self._phase is Phase.ENDING or self._stop is not None:
                return False
            self._stop = stop
            self._stop_at = time.monotonic()
            return True

    def request_stop(self, stop: Stop) -> None:
        """From the watchdog: decide, then interrupt the task's thread if it is in the task."""
        with self._lock:
            if not self.decide(stop):
                return
            target = self._target
            if self._phase is Phase.IN_TASK and target is not None and INTERRUPT_SIGNAL:
                signal.pthread_kill(target, INTERRUPT_SIGNAL)

    def take_interrupt(self) -> bool:
        """In a handler: raise TacheStopped now? Only inside the task, and only once."""
        with self._lock:
            if self._phase is Phase.IN_TASK:
                self._phase = Phase.INTERRUPTED
                return True
            return False

    # -- the task's thread -------------------------------------------------------------

    def enter_task(self) -> None:
        """About to call the task; raises TacheStopped if a stop came first."""
        with self._lock:
            if self._stop is not None:
                if self._phase is Phase.BEFORE_TASK:
                    self._phase = Phase.INTERRUPTED
                raise TacheStopped()
            self._phase = Phase.IN_TASK

    def leave_task(self) -> Stop | None:
        """Back from the task: the stop decided while it ran (fixed at the first call).

        Called twice by the task's thread, since an interrupt may land just
        before the first call and skip it.
        """
        with self._lock:
            if self._phase in (Phase.BEFORE_TASK, Phase.IN_TASK, Phase.INTERRUPTED):
                self._phase = Phase.LEFT_TASK
                self._stop_on_leaving = self._stop
            elif self._phase is Phase.ENDING:  # the watchdog took over: it exits
                return self._stop
            return self._stop_on_leaving

    def claim_end(self) -> bool:
        """True for the first caller only: it records the end; nobody signals after."""
        with self._lock:
            if self._phase is Phase.ENDING:
                return False
            self._phase = Phase.ENDING
            return True


def signal_handlers(state: StopState) -> Mapping[int, Handler]:
    """The handlers of an attempt: the watchdog's interrupt, SIGTERM and SIGINT."""
    if INTERRUPT_SIGNAL is None:
        return {}

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if state.take_interrupt():
            raise TacheStopped()

    def on_external(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        state.decide(Stop(Status.INTERRUPTED, f"interrupted by {name}", "warning"))
        if state.take_interrupt():
            raise TacheStopped()

    return {
        INTERRUPT_SIGNAL: on_interrupt,
        **{signum: on_external for signum in EXTERNAL_SIGNALS},
    }
