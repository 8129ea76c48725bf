"""The service layer: what the application, the pages and the CLI ask of flask-taches.

:class:`TaskService` (:mod:`.api`) is the public face; each concept has its module:

* :mod:`.adding`: ``add``, ``add_many``, ``chain`` (insert, files, adoption);
* :mod:`.new_rows`: a new task's checked column values and the app's defaults;
* :mod:`.json_values`, :mod:`.validation`: what a row may hold (JSON, column limits);
* :mod:`.adopting`: the caller's ``Tache`` objects joining the session;
* :mod:`.reading`: ``get``, ``latest``, ``fichier_path``, ``stats``, and the reads
  that see as the current user (``get_visible``, ``get_or_404``,
  ``visible_latest``, ``visible_batch``);
* :mod:`.actions`: ``cancel``, ``restart``, ``delete`` (``check=True`` acts as the
  current user), ``purge``;
* :mod:`.rescue`: the stale-RUNNING rescue pages trigger;
* :mod:`.sessions`: the caller's ``db.session`` (has it written? may it be ended?);
* :mod:`.files`: attached files on disk (checked, size-limited, contained).

The service calls the store's verbs and reads rows through ``db.session``;
it holds no SQL of a database of its own.
"""

from __future__ import annotations

from .actions import PURGE_BATCH
from .api import TaskService
from .new_rows import TACHE_OPTIONS

__all__ = ["PURGE_BATCH", "TACHE_OPTIONS", "TaskService"]
