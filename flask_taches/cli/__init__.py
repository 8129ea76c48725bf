"""``flask taches ...``: a thin shell over the Python API.

The group is an ``AppGroup``, so every command runs inside an app context.
Commands about single tasks live in :mod:`.tasks`, the manager's in
:mod:`.manager`, the schedules' in :mod:`.schedules`, the schema's in
:mod:`.database`, the operators' (``managers``, ``check``) in :mod:`.operations`;
what they read from the command line in :mod:`.inputs`, and their one error
boundary in :mod:`.errors`.
"""

from __future__ import annotations

from flask.cli import AppGroup

taches_cli = AppGroup("taches", help="Background tasks stored in the database (flask-taches).")

from . import database, manager, operations, schedules, tasks  # noqa: E402,F401  (they register their commands on the group)
