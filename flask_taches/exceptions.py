"""Every error flask-taches raises on purpose derives from :class:`TacheError`.

Each class's docstring is its default message, so ``raise TacheNotFound()``
still says something useful in one line.
"""

from __future__ import annotations

from typing import Any

import click


class TacheError(Exception):
    """A task could not be added, found or run."""

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.context = context
        super().__init__(message or (self.__doc__ or "").strip())


class TacheNotFound(TacheError):
    """No task has this id."""


def no_such_task(tache_id: object) -> TacheNotFound:
    """The one message for an id that names no task (service, store, runner, CLI)."""
    return TacheNotFound(f"no task with id {tache_id}")


class InvalidTache(TacheError):
    """The task is not valid (method, parametres, dates or file)."""


class MethodRefused(InvalidTache):
    """The method is outside TACHES_ALLOWED_MODULES."""


class MethodNotFound(InvalidTache):
    """The method path does not resolve to a callable."""


class ParametresNotJSON(InvalidTache):
    """parametres and parametres_caches must be JSON objects."""


class FichierRefused(InvalidTache):
    """The attached file is refused (name or extension)."""


class NotAllowed(TacheError):
    """The current user may not do this on this task."""


class InvalidTransition(TacheError):
    """The task's status does not allow this action."""


class MissingArgument(TacheError):
    """A parameter of the task's callable could not be injected."""


class UncommittedSession(TacheError):
    """Commit db.session first: it holds uncommitted changes."""


class ConfigurationError(TacheError, click.ClickException):
    """flask-taches is not set up correctly for this application.

    Also a ``click.ClickException``: raised while the ``flask`` command loads the
    application (a bad setting in ``init_app``), it prints as one ``Error: ...``
    line instead of a traceback.
    """


class SchemaMissing(ConfigurationError):
    """The extension's tables are missing: run `flask db upgrade` or `flask taches upgrade`."""

    exit_code = 2


class RetryRequested(BaseException):
    """The task asked for another attempt (``tache.retry``).

    A ``BaseException``, as the runner's stop, so that a task's own
    ``except Exception`` does not swallow it.
    """

    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(
            "retry asked" + (f" in {delay:g}s" if delay is not None else " (with the backoff)")
        )
