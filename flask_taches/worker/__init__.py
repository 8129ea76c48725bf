"""The worker: the manager process of ``flask taches start`` and how it runs each task.

It calls the store, never the service or the web, and starts each task's
process with an executor, where the runner takes over. One concept a module:

* :mod:`.manager`: :class:`Manager`, its lifetime, the loop and the claim pacing;
* :mod:`.options`: :class:`ManagerOptions` (the command's options, the settings);
* :mod:`.children`: its children, stopped, compared with their rows, settled;
* :mod:`.supervision`: one child's deadlines, and its stop in phases;
* :mod:`.endings`: how a reaped child's attempt ended (the row, or the child's hint);
* :mod:`.orphans`: the rescue of dead tasks, the kill of this host's stuck orphans;
* :mod:`.pids`: forked children's pids, written with the next claim;
* :mod:`.preloading`: what a fork manager loads once for all its children;
* :mod:`.wakeups`: what an idle manager sleeps on;
* :mod:`.executors`: fork or subprocess, and the children they start.
"""

from __future__ import annotations

from .manager import Manager
from .options import EXECUTORS, ManagerOptions

__all__ = ["EXECUTORS", "Manager", "ManagerOptions"]
