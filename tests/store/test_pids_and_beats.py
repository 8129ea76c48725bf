"""Who runs a task (its pid, recorded by its manager) and the heartbeats that prove it lives."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from flask_taches import Status
from flask_taches.clock import utcnow
from flask_taches.store import AttemptState, Beat
from tests.app import taches
from tests.store.helpers import HOST, add, claim_one_task, row, set_columns, store


def test_record_pids_writes_each_forked_childs_pid_and_host(db_ctx: Flask) -> None:
    add(2)
    first, second = store().claim_batch(2, max_running=5, hostname=None)
    store().record_pids({first.id: (first.attempt, 111), second.id: (second.attempt, 222)}, HOST)
    assert (row(first.id)["pid"], row(first.id)["hostname"]) == (111, HOST)
    assert (row(second.id)["pid"], row(second.id)["hostname"]) == (222, HOST)
    assert row(first.id)["status"] == Status.RUNNING


def test_record_pids_is_fenced_and_keeps_a_pid_already_known(db_ctx: Flask) -> None:
    known, wrong_attempt, ended, fresh = add(4)
    claimed = {c.id: c.attempt for c in store().claim_batch(4, max_running=5, hostname=HOST)}
    assert store().record_start(known, claimed[known], 1111, HOST)
    store().end_on_behalf(ended, claimed[ended], Status.FAILED, "ended already")
    store().record_pids(
        {
            known: (claimed[known], 2222),
            wrong_attempt: (claimed[wrong_attempt] + 1, 3333),
            ended: (claimed[ended], 4444),
            fresh: (claimed[fresh], 5555),
        },
        HOST,
    )
    assert row(known)["pid"] == 1111, "the child's own record stands"
    assert row(wrong_attempt)["pid"] is None, "another attempt's pid is not this one's"
    assert row(ended)["pid"] is None
    assert (row(fresh)["pid"], row(fresh)["hostname"]) == (5555, HOST)


def test_record_pids_of_nothing_does_nothing(db_ctx: Flask) -> None:
    store().record_pids({}, HOST)


def test_a_claim_records_the_pids_of_children_started_before_it(db_ctx: Flask) -> None:
    started = claim_one_task()
    (later,) = add(1)
    (claimed,) = store().claim_batch(
        1, max_running=5, hostname=HOST, started={started.id: (started.attempt, 6060)}
    )
    assert claimed.id == later
    assert row(started.id)["pid"] == 6060


def test_pids_are_recorded_even_when_nothing_is_left_to_claim(db_ctx: Flask) -> None:
    started = claim_one_task()
    for limit, max_running in ((5, 5), (0, 5), (5, 1)):
        set_columns(started.id, pid=None)
        got = store().claim_batch(
            limit,
            max_running=max_running,
            hostname=HOST,
            started={started.id: (started.attempt, 7070)},
        )
        assert got == []
        assert row(started.id)["pid"] == 7070, (limit, max_running)


def test_beat_owns_the_row_and_moves_the_heartbeat(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    old = utcnow() - timedelta(minutes=5)
    set_columns(claimed.id, heartbeat_at=old)
    assert store().beat(claimed.id, claimed.attempt) == Beat(owned=True)
    assert row(claimed.id)["heartbeat_at"] > old


def test_beat_says_who_asked_to_cancel_and_when(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    assert taches.cancel(claimed.id, who="alice") is Status.RUNNING
    beat = store().beat(claimed.id, claimed.attempt)
    assert beat.owned and beat.cancel_asked_by == "alice"
    assert beat.cancel_asked_at is not None
    assert abs(beat.cancel_asked_at - utcnow()) < timedelta(minutes=1)
    assert beat.cancel_asked_at == row(claimed.id)["cancel_requested_at"]


def test_beat_names_someone_when_the_cancel_named_nobody(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    set_columns(claimed.id, cancel_requested_at=utcnow(), cancel_requested_by=None)
    assert store().beat(claimed.id, claimed.attempt).cancel_asked_by == "someone"


def test_beat_of_another_attempt_owns_nothing(db_ctx: Flask) -> None:
    claimed = claim_one_task()
    before = row(claimed.id)["heartbeat_at"]
    assert store().beat(claimed.id, claimed.attempt + 1) == Beat(owned=False)
    assert store().beat(424242, 1) == Beat(owned=False)
    assert row(claimed.id)["heartbeat_at"] == before


def test_the_manager_beats_only_for_children_not_started(db_ctx: Flask) -> None:
    unstarted, started, superseded = add(3)
    claimed = {c.id: c.attempt for c in store().claim_batch(3, max_running=5, hostname=HOST)}
    old = utcnow() - timedelta(minutes=5)
    for tache_id in (unstarted, started, superseded):
        set_columns(tache_id, heartbeat_at=old)
    set_columns(started, pid=4242)
    touched = store().beat_for_unstarted(
        {
            unstarted: claimed[unstarted],
            started: claimed[started],
            superseded: claimed[superseded] + 1,
        }
    )
    assert touched == 1
    assert row(unstarted)["heartbeat_at"] > old
    assert row(started)["heartbeat_at"] == old, "its own process beats for it"
    assert row(superseded)["heartbeat_at"] == old
    assert store().beat_for_unstarted({}) == 0


def test_attempt_states_say_where_each_task_stands(db_ctx: Flask) -> None:
    running, waiting = add(2)
    (claimed,) = store().claim_batch(1, max_running=5, hostname=HOST)
    assert claimed.id == running
    store().record_start(running, claimed.attempt, 4242, HOST)
    states = store().attempt_states([running, waiting, 424242])
    assert set(states) == {running, waiting}
    assert states[running] == AttemptState(Status.RUNNING, 1, None, None, 4242)
    assert states[running].is_attempt(1) and not states[running].is_attempt(2)
    assert states[waiting] == AttemptState(Status.TO_RUN, 0, None, None, None)
    assert not states[waiting].is_attempt(0)
    assert store().attempt_states([]) == {}
