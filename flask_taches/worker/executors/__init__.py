"""How the manager runs one claimed task away from itself: a fork, or a new process.

* :mod:`.base`: :class:`Child` (one task's process as its manager sees it),
  :class:`Executor`, :func:`describe_exit`;
* :mod:`.forking`: what the two executors that fork the manager share
  (:class:`ForkingExecutor`, a child's first steps and its exit);
* :mod:`.fork`: :class:`ForkExecutor` (the default on POSIX) and its
  :class:`ForkedChild`;
* :mod:`.end_hints`: the memory where forked children post the end they
  recorded (a hint that spares their manager a read; the row is the truth);
* :mod:`.pool`: :class:`PoolExecutor`, long-lived forked children that run
  tasks one after another (:mod:`.pool_child` inside them, :mod:`.pool_pipes`
  between, :mod:`.pool_claims` for the next task a child claims itself), and
  its :class:`PooledChild`;
* :mod:`.spawn`: :class:`SubprocessExecutor` (``flask taches run``, portable)
  and its :class:`SpawnedChild`.
"""

from __future__ import annotations

from .base import Child, EndHint, Executor, describe_exit
from .fork import ForkedChild, ForkExecutor
from .pool import PooledChild, PoolExecutor
from .pool_claims import ClaimRules
from .spawn import SpawnedChild, SubprocessExecutor

__all__ = [
    "Child",
    "ClaimRules",
    "EndHint",
    "Executor",
    "ForkExecutor",
    "ForkedChild",
    "PoolExecutor",
    "PooledChild",
    "SpawnedChild",
    "SubprocessExecutor",
    "describe_exit",
]
