"""Helpers for an application's own tests.

* :func:`run_pending`: run every ready task in this process, in claim order,
  until none is left (the real runner: status, logs, progress, result);
* ``TACHES_EAGER = True`` in the test config runs each added task at once.

In-memory SQLite (``sqlite://``) is refused by ``init_app``: the store,
managers and ``flask taches run`` open connections of their own, which an
in-memory database does not share. Use a file, e.g. pytest's ``tmp_path``.
"""

from __future__ import annotations

from .eager import RUN_LIMIT, run_pending

__all__ = ["RUN_LIMIT", "run_pending"]
