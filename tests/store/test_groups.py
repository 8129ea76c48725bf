"""Groups: the callback runs once every member completed, with their results in order.

Each test runs on SQLite, PostgreSQL and MariaDB. The race test ends the
members at the same moment from threads with connections of their own (as
processes on different hosts would), many times over.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest
from flask import Flask

from flask_taches import Status, Tache
from flask_taches.exceptions import InvalidTache
from tests.app import db, taches
from tests.store.helpers import HOST, NOOP, chain, messages, row, store

RACES = 12  # groups whose members all end at once
PROCESS_RACES = 6  # the same, from processes of their own
JOIN_TIMEOUT = 120.0  # seconds the racing processes get to finish


def group(size: int, then: Tache | str = NOOP) -> tuple[list[int], int]:
    ids = taches.group(*[NOOP] * size, then=then)
    db.session.remove()
    return ids[:-1], ids[-1]


def claim_all(count: int) -> dict[int, int]:
    claimed = store().claim_batch(count, max_running=100, hostname=HOST)
    return {c.id: c.attempt for c in claimed}


def complete(tache_id: int, attempt: int, result: object) -> Status | None:
    return store().record_end(tache_id, attempt, Status.COMPLETED, result=result, logs=[])


def test_the_callback_waits_for_every_member_then_gets_their_results(db_ctx: Flask) -> None:
    members, callback = group(3)
    assert row(callback)["status"] == Status.WAITING
    assert row(callback)["waits_for"] == 3
    attempts = claim_all(5)
    assert sorted(attempts) == members, "the callback is not claimable"
    # They end in another order than the group's: previous keeps the group's.
    for tache_id, result in zip(reversed(members), ["c", "b", "a"], strict=True):
        assert row(callback)["status"] == Status.WAITING
        assert complete(tache_id, attempts[tache_id], result) is Status.COMPLETED
    released = row(callback)
    assert released["status"] == Status.TO_RUN
    assert released["parametres"]["previous"] == ["a", "b", "c"]
    assert released["waits_for"] == 0


def test_a_failed_member_cancels_the_callback_saying_which(db_ctx: Flask) -> None:
    members, callback = group(2)
    attempts = claim_all(2)
    complete(members[0], attempts[members[0]], 1)
    store().record_end(members[1], attempts[members[1]], Status.FAILED, logs=[])
    assert row(callback)["status"] == Status.CANCELLED
    assert messages(callback)[-1] == f"cancelled: task {members[1]} of its group ended FAILED"


def test_a_cancelled_member_cancels_the_callback_and_a_late_completion_changes_nothing(
    db_ctx: Flask,
) -> None:
    members, callback = group(2)
    attempts = claim_all(1)
    store().request_cancel(members[1], "alice")  # still TO_RUN: cancelled at once
    assert row(callback)["status"] == Status.CANCELLED
    complete(members[0], attempts[members[0]], 1)
    assert row(callback)["status"] == Status.CANCELLED


def test_a_retried_member_keeps_the_callback_waiting(db_ctx: Flask) -> None:
    ids = taches.group(Tache(method=NOOP, max_attempts=2), NOOP, then=NOOP)
    db.session.remove()
    attempts = claim_all(2)
    assert store().record_end(ids[0], attempts[ids[0]], Status.FAILED, logs=[]) is Status.TO_RUN
    complete(ids[1], attempts[ids[1]], 2)
    assert row(ids[2])["status"] == Status.WAITING
    assert row(ids[2])["waits_for"] == 1


def test_a_chained_task_gets_the_previous_result(db_ctx: Flask) -> None:
    first, second = chain(NOOP, Tache(method=NOOP, parametres={"keep": 1}))
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    complete(first, claimed.attempt, {"rows": 42})
    assert row(second)["parametres"] == {"keep": 1, "previous": {"rows": 42}}


def test_a_group_is_refused_without_members_or_with_a_task_not_new(db_ctx: Flask) -> None:
    with pytest.raises(InvalidTache, match="at least one task"):
        taches.group(then=NOOP)
    with pytest.raises(InvalidTache, match="then= is a new task"):
        taches.group(NOOP, then=Tache(method=NOOP, status=Status.WAITING.value))


def end_together(app: Flask, attempts: dict[int, int]) -> list[BaseException]:
    """Complete every attempt at the same moment, each from a thread of its own."""
    barrier = threading.Barrier(len(attempts))
    errors: list[BaseException] = []

    def end(tache_id: int) -> None:
        try:
            with app.app_context():
                barrier.wait()
                complete(tache_id, attempts[tache_id], tache_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=end, args=(tache_id,)) for tache_id in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_members_ending_at_the_same_moment_release_the_callback_once(db_ctx: Flask) -> None:
    for _ in range(RACES):
        members, callback = group(3)
        assert end_together(db_ctx, claim_all(3)) == []
        released = row(callback)
        assert released["status"] == Status.TO_RUN
        assert released["parametres"]["previous"] == members
        assert released["waits_for"] == 0
        (claimed,) = store().claim_batch(5, max_running=100, hostname=HOST)
        assert claimed.id == callback
        complete(callback, claimed.attempt, None)


def _complete_in_a_process(attempts: list[list[tuple[int, int]]], index: int, barrier: Any) -> None:
    """In a process of its own: end member ``index`` of each group when all are ready."""
    from tests.app import create_app

    app = create_app()
    with app.app_context():
        for group_attempts in attempts:
            tache_id, attempt = group_attempts[index]
            barrier.wait(timeout=JOIN_TIMEOUT)
            complete(tache_id, attempt, tache_id)


def test_members_ending_together_in_different_processes_release_the_callback_once(
    db_ctx: Flask,
) -> None:
    groups = [group(3) for _ in range(PROCESS_RACES)]
    attempts = []
    for members, _ in groups:
        claimed = claim_all(3)
        attempts.append([(m, claimed[m]) for m in members])
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as on another host
    barrier = spawn.Barrier(3)
    processes = [
        spawn.Process(target=_complete_in_a_process, args=(attempts, i, barrier)) for i in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    for members, callback in groups:
        released = row(callback)
        assert (released["status"], released["waits_for"]) == (Status.TO_RUN, 0)
        assert released["parametres"]["previous"] == members
