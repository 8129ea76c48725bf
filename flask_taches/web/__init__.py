"""The web layer: the ``taches`` blueprint, its routes, and the Jinja helpers.

One module per concept: :mod:`.blueprint` (the object, and what it does to
every request: refuse the input no view may see, add the headers of every
answer), :mod:`.pages` (the
dashboard and a task's page, read by :mod:`.dashboard`), :mod:`.status` (one
task's fragment and JSON, and the batch ``status.js`` polls, with the live
pages' extras of :mod:`.live`), :mod:`.actions` (cancel, restart, delete one
task), :mod:`.bulk` (cancel-all, restart-failed, delete-finished on a filter,
with the panels of :mod:`.overview`), :mod:`.files` (the download),
:mod:`.health` and :mod:`.metrics` (for load balancers and Prometheus),
:mod:`.answers` (HTML or JSON, errors, the 404 for what a user may not see),
:mod:`.redirects`, :mod:`.inputs`, :mod:`.rows`, :mod:`.schema_missing` (a page that finds no
table), and beside the routes
:mod:`.templating` and :mod:`.showing` (Jinja globals), :mod:`.csrf` and :mod:`.i18n`.

Every route calls the service (``app_state().service``); endpoint names are
``taches.<view function name>``.
"""

from __future__ import annotations

from . import actions, bulk, files, health, metrics, pages, schema_missing, status  # noqa: F401  (each adds its routes to the blueprint)
from .blueprint import blueprint

__all__ = ["blueprint"]
