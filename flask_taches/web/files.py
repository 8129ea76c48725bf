"""The download of a task's attached file."""

from __future__ import annotations

from flask import Response, send_file

from .. import auth
from ..exceptions import TacheNotFound
from ..service.files import contained_fichier
from ..state import app_state
from .answers import fail, http_errors
from .blueprint import blueprint
from .rows import shown_or_404


@blueprint.get("/<int:tache_id>/fichier")
@http_errors
def fichier(tache_id: int) -> Response:
    """The task's attached file, as a download: only a file inside the task's own folder."""
    tache = shown_or_404(tache_id)
    if not auth.can(tache, "fichier"):
        fail(403, f"you may not download the file of task {tache_id}")
    # The row's name is checked again: one edited by SQL may say "../../etc/hostname".
    path = contained_fichier(app_state().fichier_folder(tache.id), tache.fichier)
    if path is None:
        raise TacheNotFound(f"task {tache_id} has no file")
    return send_file(path, as_attachment=True, download_name=path.name)
