"""The fast paths: what the manager prepares before forking, a child must not prepare again."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flask_taches import Status
from flask_taches.store import fast
from tests.store.helpers import claim_one_task, row, store


@pytest.mark.parametrize("progress", [None, {"step": 1}])
def test_after_the_warm_up_no_completion_is_compiled_again(
    db_ctx: Flask, monkeypatch: pytest.MonkeyPatch, progress: dict[str, int] | None
) -> None:
    """Every COMPLETED variant a child may write is ready once the manager warmed up."""
    store().warm_up()

    def compiled_in_the_child(*args: object) -> None:
        raise AssertionError("a statement was compiled after the warm-up")

    # The claim (and the add() before it, which has a prepared statement of its own)
    # happen in the manager; only the end is the child's.
    claimed = claim_one_task()
    monkeypatch.setattr(fast.Prepared, "__init__", compiled_in_the_child)
    ended = store().record_end(
        claimed.id, claimed.attempt, Status.COMPLETED, logs=[], progress=progress
    )
    assert ended is Status.COMPLETED
    assert row(claimed.id)["status"] == Status.COMPLETED


def test_the_warm_up_configures_the_mappers_each_child_would(db_ctx: Flask) -> None:
    """A child makes its row a Tache: the ORM must not configure its mappers there."""

    class Base(DeclarativeBase):
        pass

    class Note(Base):  # a model of the app's, mapped after the last configuration
        __tablename__ = "warm_up_notes"
        id: Mapped[int] = mapped_column(primary_key=True)

    mapper = inspect(Note)
    assert not mapper.configured
    store().warm_up()
    assert mapper.configured
