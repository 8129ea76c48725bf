"""The plain values the store hands to the manager and the runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..status import Status


@dataclass(frozen=True)
class ClaimAsk:
    """One claim: up to ``limit`` tasks of ``queues`` for a manager on ``hostname``,
    while all managers together run at most ``max_running``."""

    limit: int
    max_running: int
    queues: Sequence[str] | None
    hostname: str | None
    #: The claiming process runs the task itself (a pool child taking its next).
    pid: int | None = None


@dataclass(frozen=True)
class Claimed:
    """A task a manager has just made RUNNING, with what its executor needs."""

    id: int
    attempt: int
    method: str
    timeout: float | None
    queue: str
    #: The whole row as claimed (RUNNING, this attempt): a forked child runs
    #: from it without reading the row again.
    row: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_row(cls, row: Mapping[Any, Any]) -> Claimed:
        """From the whole row as the claim left it."""
        values = dict(row)
        attempt = int(values["attempts"])
        return cls(
            values["id"], attempt, values["method"], values["timeout"], values["queue"], values
        )


@dataclass(frozen=True)
class Beat:
    """What a task's heartbeat learnt."""

    #: False once this attempt no longer owns the row (declared dead elsewhere).
    owned: bool
    #: Who asked to cancel the task, once somebody did.
    cancel_asked_by: str | None = None
    cancel_asked_at: datetime | None = None


@dataclass(frozen=True)
class AttemptState:
    """A task's row as its supervising manager sees it."""

    status: Status
    attempts: int
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    #: Set once the task's process is known (recorded by its manager or itself).
    pid: int | None = None

    def is_attempt(self, attempt: int) -> bool:
        """Still RUNNING for this very attempt (not ended, not superseded)?"""
        return self.status is Status.RUNNING and self.attempts == attempt


@dataclass(frozen=True)
class Rescued:
    """A RUNNING task found dead by the rescue, and where it went."""

    id: int
    attempt: int
    status: Status
    reason: str


@dataclass(frozen=True)
class Overdue:
    """A task of this host past its timeout and grace."""

    id: int
    attempt: int
    pid: int
    started_at: datetime
    timeout: float


@dataclass(frozen=True)
class Asked:
    """A task asked for another attempt (``tache.retry``): in ``delay`` seconds, or the backoff."""

    delay: float | None = None
