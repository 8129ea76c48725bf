"""A pool child that has recorded its task's end claims its next task itself.

Else every task would wait for its manager to wake, claim and send it: two
process switches and a claim transaction between the end of one task and
the start of the next, which bound a pool of short tasks far below what its
children could run (and on a loaded machine, each switch waits for a core).

The claim is the manager's own (:meth:`Store.claim_batch` with its
``--max``, its queues and its hostname), under the same database-wide claim
lock, so a child taking its next task changes neither who may claim what nor
the global ``TACHES_MAX``: its own task is no longer RUNNING when it counts.
The claim records the child's pid, as the manager would, and the child
posts the claimed task with its result (:mod:`.pool_pipes`), so that its
manager supervises it from then on as any task it started (timeout, cancel,
heartbeat, fencing).

Only where claims are cheap to run one by one (:attr:`Store.cheap_single_claims`:
SQLite, whose write lock is taken and released by local calls); where the
claim lock is a server's, held across round trips (PostgreSQL, MariaDB), the
children would queue on it, and their manager's batched claims serve them
better (measured on PostgreSQL with four children: about half the drain).

A child claims only while its manager is claiming: the manager clears a
byte of memory shared with its children when it stops claiming (a stop, the
end of its lifetime, a re-execution), and a child whose task pipe has ended
(its manager gone, even by ``kill -9``) claims nothing and leaves.
"""

from __future__ import annotations

import mmap
import os
import select
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from ...store import Claimed, Store


@dataclass(frozen=True)
class ClaimRules:
    """What the manager's claims take: a child's claims take the same."""

    max_running: int
    queues: Sequence[str] | None
    hostname: str | None


class NextTasks:
    """Created by the manager before its first fork; its children claim through it."""

    def __init__(self, rules: ClaimRules) -> None:
        self.rules = rules
        # Anonymous and shared: the children see each change the manager makes.
        self._allowed = mmap.mmap(-1, 1)
        #: In a child: its last claim found a task (then more is likely).
        self._found = True

    def allow(self, allowed: bool) -> None:
        """In the manager: whether its children may claim (it is claiming itself)."""
        self._allowed[0] = int(allowed)

    def claim(self, store: Store, tasks_fd: int) -> Claimed | None:
        """In a child whose task has ended: its next task, None when it must not or none waits."""
        if not self._allowed[0] or _ended(tasks_fd):
            return None
        rules = self.rules
        try:
            claimed = store.claim_batch(
                1,
                max_running=rules.max_running,
                queues=rules.queues,
                hostname=rules.hostname,
                expect_work=self._found,
                pid=os.getpid(),
            )
        except SQLAlchemyError:
            claimed = []  # the manager claims again once the database answers
        self._found = bool(claimed)
        return claimed[0] if claimed else None


def _ended(tasks_fd: int) -> bool:
    """The task pipe has something to read: the manager never writes to a busy child,
    so it is the pipe's end (its manager closed it, or is gone)."""
    readable, _, _ = select.select([tasks_fd], [], [], 0)
    return bool(readable)
