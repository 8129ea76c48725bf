"""Unique tasks: one live task per signature, on each database.

The race test forks 20 processes that each add the same unique task at the
same moment (a barrier releases them together): all get one id, one row.
"""

from __future__ import annotations

import multiprocessing
import os

import pytest
from flask import Flask
from sqlalchemy import select

from flask_taches import Status, Tache
from flask_taches.exceptions import InvalidTache, InvalidTransition
from flask_taches.models import taches_table
from tests.app import db, taches

ADD = "tests.tasks:add"
RACERS = 20
T = taches_table.c


def live_rows(signature: str) -> list[int]:
    live = [Status.WAITING.value, Status.TO_RUN.value, Status.RUNNING.value]
    with taches.store().read() as conn:
        query = select(T.id).where((T.signature == signature) & T.status.in_(live))
        return list(conn.execute(query).scalars())


def finish(tache_id: int, status: Status = Status.COMPLETED) -> None:
    attempt = taches.store().claim_one(tache_id)
    assert taches.store().record_end(tache_id, attempt, status, logs=[], retry=False) == status


def test_a_second_unique_add_answers_with_the_live_task(db_ctx: Flask) -> None:
    first = taches.add(ADD, parametres={"a": 1}, signature="import-42", unique=True)
    again = taches.add(ADD, parametres={"a": 2}, signature="import-42", unique=True)
    other = taches.add(ADD, parametres={"a": 3}, signature="IMPORT-42", unique=True)
    plain = taches.add(ADD, parametres={"a": 4}, signature="import-42")
    assert again == first
    assert len({first, other, plain}) == 3  # another signature; a task that is not unique
    assert taches.get(first).parametres == {"a": 1}


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED])
def test_an_ended_task_frees_its_signature(db_ctx: Flask, status: Status) -> None:
    first = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    finish(first, status)
    second = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    assert second != first
    assert live_rows("s") == [second]


def test_cancel_and_delete_free_the_signature(db_ctx: Flask) -> None:
    first = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    taches.cancel(first)
    second = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    assert second != first
    taches.delete(second)
    assert taches.add(ADD, parametres={"a": 1}, signature="s", unique=True) not in (first, second)


def test_a_restart_is_refused_while_another_task_holds_the_signature(db_ctx: Flask) -> None:
    first = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    finish(first)
    second = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    with pytest.raises(InvalidTransition, match=f"task {first}: another live task holds"):
        taches.restart(first)
    finish(second)
    taches.restart(first)  # free again: the restarted task holds it
    assert taches.add(ADD, parametres={"a": 1}, signature="s", unique=True) == first


def test_unique_needs_a_signature_and_add(db_ctx: Flask) -> None:
    with pytest.raises(InvalidTache, match="unique=True needs a signature"):
        taches.add(ADD, parametres={"a": 1}, unique=True)
    with pytest.raises(InvalidTache, match=r"added with add\(\.\.\., signature=S, unique=True\)"):
        taches.add_many([Tache(method=ADD, parametres={"a": 1}, unique_key="s")])


def test_commit_false_leaves_the_callers_transaction_usable(db_ctx: Flask) -> None:
    first = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True)
    again = taches.add(ADD, parametres={"a": 1}, signature="s", unique=True, commit=False)
    later = taches.add(ADD, parametres={"a": 1}, commit=False)
    db.session.commit()
    assert again == first
    assert taches.get(later) is not None


def _race(app: Flask, barrier: multiprocessing.synchronize.Barrier, answers: object) -> None:
    with app.app_context():
        db.engine.dispose(close=False)  # the parent's pooled connections are not ours
        barrier.wait()
        tache_id = taches.add(ADD, parametres={"a": os.getpid()}, signature="race", unique=True)
        answers.put(tache_id)  # type: ignore[attr-defined]


def test_twenty_processes_adding_one_unique_task_get_one_id(db_ctx: Flask) -> None:
    db.engine.dispose()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(RACERS)
    answers = context.Queue()
    racers = [context.Process(target=_race, args=(db_ctx, barrier, answers)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    ids = [answers.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0
    assert len(set(ids)) == 1, ids
    assert live_rows("race") == [ids[0]]
