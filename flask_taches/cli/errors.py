"""The CLI's one error boundary: bad input is one ``Error: ...`` line and exit code 2.

Every task command is a :class:`TaskCommand`: a usage error (a bad option, a
bad ID) and any :class:`~flask_taches.TacheError` the service or the runner
raises leave as :class:`InvalidInput`, so no command translates errors itself;
so does a database error whose reason is a missing table (which one, and how
to create it).
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from ..console import printable
from ..exceptions import TacheError
from ..exit_codes import EXIT_NOT_RUN
from ..migrations.check import missing_schema
from ..state import app_state

#: Bad input, for every command: for ``run`` it is "nothing to run here" (see ``exit_codes``).
EXIT_INVALID = EXIT_NOT_RUN


class InvalidInput(click.ClickException):
    """Bad input: shown as one ``Error: ...`` line on stderr, exit code 2."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str) -> None:
        # Always one line, and no control character of the input reaches the terminal.
        super().__init__(printable(" ".join(str(message).split())))


def fail(message: str) -> NoReturn:
    raise InvalidInput(message)


class TaskCommand(click.Command):
    """A command whose usage errors and refusals are one line (not the usage block)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise InvalidInput(exc.format_message()) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TacheError as exc:
            raise InvalidInput(str(exc)) from exc
        except SQLAlchemyError as exc:
            # A missing table is a set-up step not done: one line that says which.
            missing = missing_schema(app_state().store.engine)
            if missing is None:
                raise
            raise InvalidInput(str(missing)) from exc
