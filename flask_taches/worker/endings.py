"""How a reaped child's attempt ended: one protocol, whatever the executor.

The row is the truth. A forked child posts the end it recorded
(:meth:`Child.end_hint`) and spares its manager the read; any other child,
and a forked one that posted nothing or something unreadable, has its row
read instead (all of them in one query). A hint can therefore only save a
read, never give a wrong end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from ..store import AttemptState, Store
from .executors import EndHint
from .log import logger
from .supervision import SupervisedChild


@dataclass(frozen=True)
class AttemptEnd:
    """Where a reaped child's attempt stands."""

    #: How it ended, for the log: a status, ``deleted``, ``superseded by attempt 3``...
    shown: str
    #: Still RUNNING for this attempt: nobody recorded an end, the manager must.
    unrecorded: bool = False

    @classmethod
    def from_hint(cls, hint: EndHint) -> AttemptEnd:
        return cls(hint.status.value if hint.status is not None else "not this attempt's")

    @classmethod
    def from_row(cls, state: AttemptState | None, attempt: int) -> AttemptEnd:
        if state is None:
            return cls("deleted")
        if state.attempts != attempt:
            return cls(f"superseded by attempt {state.attempts}")
        return cls(state.status.value, unrecorded=state.is_attempt(attempt))


def how_they_ended(store: Store, reaped: Sequence[SupervisedChild]) -> list[AttemptEnd | None]:
    """How each reaped child's attempt ended, in order: its hint if posted, else its row.

    None for a child whose row could not be read (a database error, logged):
    ask again at the next pass.
    """
    hints = [supervised.child.end_hint() for supervised in reaped]
    unhinted = [s.claimed.id for s, hint in zip(reaped, hints, strict=True) if hint is None]
    states: dict[int, AttemptState] | None = {}
    if unhinted:
        try:
            states = store.attempt_states(unhinted)
        except SQLAlchemyError as exc:
            logger.error(
                "cannot read the rows of ended tasks (will retry): %s",
                exc,
                extra={"action": "settle_error", "tache_id": None},
            )
            states = None
    ends: list[AttemptEnd | None] = []
    for supervised, hint in zip(reaped, hints, strict=True):
        if hint is not None:
            ends.append(AttemptEnd.from_hint(hint))
        elif states is None:
            ends.append(None)
        else:
            task = supervised.claimed
            ends.append(AttemptEnd.from_row(states.get(task.id), task.attempt))
    return ends
