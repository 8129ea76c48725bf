"""The task state machine (:mod:`flask_taches.lifecycle`), on plain values.

No database, no app, no clock: a fixed ``NOW`` and a seeded ``random.Random``.
The store applies these plans; its own suite (``tests/store``) checks that it
does, on every database.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from flask_taches import lifecycle
from flask_taches.lifecycle import (
    JITTER,
    MAX_RETRY_DELAY,
    ChainStep,
    Running,
    Silent,
    Verdict,
)
from flask_taches.status import FINISHED, UNFINISHED, Status

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
BASE = 10.0
LOW, HIGH = JITTER
HERE = "this-host"


def rng() -> random.Random:
    return random.Random(1234)


def running(**fields: object) -> Running:
    values: dict = {"id": 7, "attempts": 1, "max_attempts": 3, **fields}
    return Running(**values)


def end(row: Running, ended: Status, *, retry: bool = True) -> lifecycle.EndPlan:
    return lifecycle.end_attempt(row, ended, now=NOW, retry_base=BASE, rng=rng(), retry=retry)


def messages(entries: tuple[dict, ...]) -> list[str]:
    return [entry["message"] for entry in entries]


# -- log entries and retry delays --------------------------------------------------------


def test_a_log_entry_has_the_shape_tache_log_writes() -> None:
    assert lifecycle.log_entry("info", "hello", NOW, {"k": 1}) == {
        "level": "info",
        "message": "hello",
        "details": {"k": 1},
        "at": NOW.isoformat(),
    }
    assert lifecycle.log_entry("error", "x", NOW)["details"] is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4])
def test_the_retry_delay_doubles_each_attempt_within_its_jitter(attempt: int) -> None:
    backoff = BASE * 2 ** (attempt - 1)
    delays = [lifecycle.retry_delay(attempt, BASE, random.Random(seed)) for seed in range(200)]
    assert all(backoff * LOW <= d <= backoff * HIGH for d in delays)
    assert len({round(d, 6) for d in delays}) > 100, "jittered, not one fixed delay"


def test_the_retry_delay_is_the_same_for_the_same_seed() -> None:
    assert lifecycle.retry_delay(3, BASE, rng()) == lifecycle.retry_delay(3, BASE, rng())


def test_attempt_zero_or_below_waits_the_base() -> None:
    delay = lifecycle.retry_delay(0, BASE, rng())
    assert BASE * LOW <= delay <= BASE * HIGH


def test_the_backoff_stops_growing_at_max_retry_delay() -> None:
    # The cap bounds the backoff; the jitter is drawn after it (as the store always did).
    for attempt in (20, 60, 500):
        delays = [lifecycle.retry_delay(attempt, BASE, random.Random(s)) for s in range(50)]
        assert all(MAX_RETRY_DELAY * LOW <= d <= MAX_RETRY_DELAY * HIGH for d in delays)


# -- how an attempt ends -----------------------------------------------------------------


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_a_cancel_asked_meanwhile_wins_over_a_failure(ended: Status) -> None:
    row = running(attempts=1, max_attempts=3, cancel_requested_at=NOW, cancel_requested_by="bob")
    plan = end(row, ended)
    assert plan.status is Status.CANCELLED
    assert not plan.retrying and plan.run_at is None
    assert messages(plan.entries) == [
        f"cancelled by bob: attempt 1 ended {ended.value} before acting on it, so it is not retried"
    ]
    assert plan.entries[0]["level"] == "warning"
    assert plan.entries[0]["at"] == NOW.isoformat()


def test_a_cancel_by_nobody_named_is_attributed_to_someone() -> None:
    plan = end(running(cancel_requested_at=NOW), Status.FAILED)
    assert messages(plan.entries)[0].startswith(f"cancelled by {lifecycle.NOBODY}:")


def test_a_cancel_wins_even_when_no_retry_was_possible() -> None:
    row = running(attempts=1, max_attempts=1, cancel_requested_at=NOW, cancel_requested_by="bob")
    assert end(row, Status.FAILED, retry=False).status is Status.CANCELLED


def test_a_completed_attempt_stays_completed_even_with_a_cancel_asked() -> None:
    row = running(attempts=1, cancel_requested_at=NOW, cancel_requested_by="bob")
    plan = end(row, Status.COMPLETED)
    assert (plan.status, plan.run_at, plan.chain) == (Status.COMPLETED, None, None)
    # The log says the cancel came too late, and when it was asked.
    assert [(e["level"], e["message"]) for e in plan.entries] == [
        (
            "warning",
            f"cancel asked by bob at {NOW.isoformat(timespec='seconds')} came too late: "
            "attempt 1 had completed first",
        )
    ]


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_a_failure_with_attempts_left_is_retried_after_its_backoff(ended: Status) -> None:
    plan = end(running(attempts=2, max_attempts=3, next_id=8), ended)
    assert plan.status is Status.TO_RUN and plan.retrying
    assert plan.run_at is not None
    delay = (plan.run_at - NOW).total_seconds()
    assert BASE * 2 * LOW <= delay <= BASE * 2 * HIGH
    assert delay == pytest.approx(lifecycle.retry_delay(2, BASE, rng()))
    assert messages(plan.entries) == [
        f"attempt 2 of 3 ended {ended.value}; retrying in {delay:.1f}s"
    ]
    assert plan.chain is None, "the chain waits for the retry's end"


def test_a_retry_is_never_scheduled_further_than_the_capped_backoff() -> None:
    plan = end(running(attempts=99, max_attempts=100), Status.FAILED)
    assert plan.run_at is not None
    assert (plan.run_at - NOW).total_seconds() <= MAX_RETRY_DELAY * HIGH


def test_no_retry_when_another_attempt_would_fail_the_same_way() -> None:
    plan = end(running(attempts=1, max_attempts=3), Status.FAILED, retry=False)
    assert (plan.status, plan.entries, plan.run_at) == (Status.FAILED, (), None)


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_the_last_attempt_keeps_how_it_ended(ended: Status) -> None:
    plan = end(running(attempts=3, max_attempts=3), ended)
    assert (plan.status, plan.entries, plan.run_at, plan.chain) == (ended, (), None, None)


def test_a_completed_task_releases_the_next_one_of_its_chain() -> None:
    plan = end(running(next_id=8), Status.COMPLETED)
    assert plan.chain == ChainStep(8, release=True)


@pytest.mark.parametrize("ended", [Status.FAILED, Status.INTERRUPTED])
def test_a_final_failure_cancels_the_rest_of_the_chain_saying_why(ended: Status) -> None:
    plan = end(running(attempts=3, max_attempts=3, next_id=8), ended)
    assert plan.chain == ChainStep(
        8,
        release=False,
        reason=f"cancelled: task 7 before it in the chain ended {ended.value}",
        group_reason=f"cancelled: task 7 of its group ended {ended.value}",
    )


def test_a_cancel_that_won_cancels_the_rest_of_the_chain() -> None:
    plan = end(running(next_id=8, cancel_requested_at=NOW), Status.INTERRUPTED)
    assert plan.chain is not None and not plan.chain.release
    assert plan.chain.reason == "cancelled: task 7 before it in the chain ended CANCELLED"


def test_a_deleted_task_cancels_the_tasks_waiting_on_it() -> None:
    assert lifecycle.after_delete(7, 8) == ChainStep(
        8,
        release=False,
        reason="cancelled: task 7 before it in the chain was deleted",
        group_reason="cancelled: task 7 of its group was deleted",
    )


def test_a_released_task_keeps_its_own_later_run_at() -> None:
    later = NOW + timedelta(days=1)
    assert lifecycle.released_run_at(later, NOW) == later
    assert lifecycle.released_run_at(NOW - timedelta(days=1), NOW) == NOW
    assert lifecycle.released_run_at(None, NOW) == NOW


def test_running_reads_a_row_mapping_with_defaults_for_nulls() -> None:
    row = {
        "id": 5,
        "attempts": None,
        "max_attempts": None,
        "next_id": None,
        "cancel_requested_at": None,
        "cancel_requested_by": None,
    }
    assert Running.of(row) == Running(id=5, attempts=0, max_attempts=1)


# -- cancel and restart ------------------------------------------------------------------


def test_cancelling_a_running_task_only_raises_its_flag() -> None:
    plan = lifecycle.cancel(7, Status.RUNNING, 8, "alice", NOW)
    assert plan is not None and plan.flag_only
    assert (plan.status, plan.asker, plan.entries, plan.chain) == (
        Status.RUNNING,
        "alice",
        (),
        None,
    )


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_cancelling_a_finished_task_does_nothing(status: Status) -> None:
    assert lifecycle.cancel(7, status, 8, "alice", NOW) is None


@pytest.mark.parametrize("status", [Status.WAITING, Status.TO_RUN])
def test_cancelling_a_task_not_running_cancels_it_and_its_chain(status: Status) -> None:
    plan = lifecycle.cancel(7, status, 8, "alice", NOW)
    assert plan is not None and not plan.flag_only
    assert plan.status is Status.CANCELLED
    assert messages(plan.entries) == [f"cancelled by alice at {NOW.isoformat()}"]
    assert plan.entries[0]["level"] == "warning"
    assert plan.chain == ChainStep(
        8, release=False, reason="cancelled: task 7 before it in the chain ended CANCELLED"
    )


def test_a_cancel_by_nobody_named_is_anonymous_and_a_lone_task_has_no_chain() -> None:
    plan = lifecycle.cancel(7, Status.TO_RUN, None, None, NOW)
    assert plan is not None
    assert plan.asker == "anonymous" and plan.chain is None


@pytest.mark.parametrize("status", sorted(UNFINISHED))
def test_a_task_not_finished_cannot_be_restarted(status: Status) -> None:
    assert lifecycle.restart(status, 1, 3, NOW) is None


@pytest.mark.parametrize(("attempts", "max_attempts"), [(1, 1), (3, 3), (1, 5), (0, 1)])
def test_a_restart_gives_a_fresh_round_and_keeps_max_attempts(
    attempts: int, max_attempts: int
) -> None:
    plan = lifecycle.restart(Status.FAILED, attempts, max_attempts, NOW)
    assert plan is not None
    assert plan.restart_base == attempts
    assert plan.run_at == NOW
    assert messages(plan.entries) == [
        f"restarted: up to {max_attempts} attempt(s) from attempt {attempts + 1}"
    ]
    assert plan.entries[0]["level"] == "info"
    # The round's attempts are counted from the base: all of them retry but the last.
    for extra in range(1, max_attempts + 1):
        row = running(attempts=attempts + extra, max_attempts=max_attempts, restart_base=attempts)
        assert end(row, Status.FAILED).retrying is (extra < max_attempts)


def test_a_restart_keeps_a_future_run_at_and_not_a_past_one() -> None:
    later = NOW + timedelta(hours=5)
    plan = lifecycle.restart(Status.CANCELLED, 0, 1, NOW, run_at=later)
    assert plan is not None and plan.run_at == later
    assert messages(plan.entries)[0].endswith(f"not before {later.isoformat()}")
    plan = lifecycle.restart(Status.CANCELLED, 0, 1, NOW, run_at=NOW - timedelta(days=1))
    assert plan is not None and plan.run_at == NOW


# -- retries the task asks for -------------------------------------------------------------


def test_a_retry_asked_for_waits_the_delay_given_or_the_backoff() -> None:
    row = running(attempts=1, max_attempts=3)
    plan = lifecycle.end_attempt(
        row, Status.FAILED, now=NOW, retry_base=BASE, rng=rng(), retry_in=2.5, asked=True
    )
    assert plan.retrying and plan.run_at == NOW + timedelta(seconds=2.5)
    assert messages(plan.entries) == ["attempt 1 of 3 asked for a retry; retrying in 2.5s"]
    backoff = lifecycle.end_attempt(
        row, Status.FAILED, now=NOW, retry_base=BASE, rng=rng(), asked=True
    )
    assert backoff.run_at == end(row, Status.FAILED).run_at


def test_a_retry_asked_for_on_the_last_attempt_fails_saying_so() -> None:
    plan = lifecycle.end_attempt(
        running(attempts=3, max_attempts=3, next_id=8),
        Status.FAILED,
        now=NOW,
        retry_base=BASE,
        rng=rng(),
        retry_in=1.0,
        asked=True,
    )
    assert plan.status is Status.FAILED and plan.chain is not None and not plan.chain.release
    assert messages(plan.entries) == [
        "the task asked for a retry, but attempt 3 of 3 was its last: FAILED"
    ]


def test_a_cancel_wins_over_a_retry_asked_for() -> None:
    row = running(attempts=1, max_attempts=3, cancel_requested_at=NOW, cancel_requested_by="bob")
    plan = lifecycle.end_attempt(
        row, Status.FAILED, now=NOW, retry_base=BASE, rng=rng(), retry_in=1.0, asked=True
    )
    assert plan.status is Status.CANCELLED


@pytest.mark.parametrize("status", sorted(FINISHED))
def test_every_finished_status_can_be_restarted(status: Status) -> None:
    assert lifecycle.restart(status, 1, 1, NOW) is not None


# -- the rescue --------------------------------------------------------------------------


def verdict(
    *,
    beat_age: float | None,
    pid: int | None = 4242,
    hostname: str | None = HERE,
    alive: bool = True,
    here: str | None = HERE,
    timeout: float = 30.0,
) -> Verdict | None:
    heartbeat_at = None if beat_age is None else NOW - timedelta(seconds=beat_age)
    asked: list[int] = []

    def is_alive(p: int) -> bool:
        asked.append(p)
        return alive

    found = lifecycle.rescue_verdict(
        Silent(heartbeat_at, pid, hostname),
        now=NOW,
        heartbeat_timeout=timeout,
        here=here,
        is_alive=is_alive,
    )
    if hostname != here or pid is None or here is None:
        assert asked == [], "a pid of another host (or none) is never checked"
    return found


def test_a_stale_heartbeat_of_another_host_is_dead() -> None:
    found = verdict(beat_age=45.0, hostname="elsewhere")
    assert found == Verdict("no heartbeat for 45.0s (limit 30s)", NOW - timedelta(seconds=30))


def test_a_stale_heartbeat_without_a_pid_is_dead() -> None:
    found = verdict(beat_age=45.0, pid=None)
    assert found is not None and found.reason == "no heartbeat for 45.0s (limit 30s)"


def test_running_without_any_heartbeat_is_dead() -> None:
    found = verdict(beat_age=None, hostname="elsewhere")
    assert found == Verdict("RUNNING without any heartbeat", NOW - timedelta(seconds=30))


def test_a_live_pid_on_this_host_outweighs_silence() -> None:
    assert verdict(beat_age=45.0, alive=True) is None
    assert verdict(beat_age=None, alive=True) is None


def test_a_silent_task_whose_pid_is_gone_here_is_dead_for_its_silence() -> None:
    found = verdict(beat_age=45.0, alive=False)
    assert found is not None and found.stale_before == NOW - timedelta(seconds=30)


def test_a_dead_pid_on_this_host_is_dead_at_once() -> None:
    found = verdict(beat_age=1.0, pid=999, alive=False)
    assert found == Verdict(f"process 999 on {HERE} is gone without recording an end", None)


def test_a_beating_task_with_a_live_pid_here_lives() -> None:
    assert verdict(beat_age=1.0, alive=True) is None


def test_another_hosts_pid_is_not_checked() -> None:
    assert verdict(beat_age=1.0, hostname="elsewhere", alive=False) is None


def test_without_a_host_of_its_own_the_rescue_checks_no_pid() -> None:
    assert verdict(beat_age=1.0, here=None, hostname=None, alive=False) is None
    assert verdict(beat_age=45.0, here=None, hostname=None, alive=True) is not None


def test_a_heartbeat_exactly_at_the_limit_is_not_stale() -> None:
    assert verdict(beat_age=30.0, hostname="elsewhere") is None


def test_a_heartbeat_written_since_a_silence_verdict_saves_the_task() -> None:
    judged = Verdict("no heartbeat", NOW - timedelta(seconds=30))
    assert lifecycle.still_dead(judged, NOW - timedelta(seconds=31))
    assert not lifecycle.still_dead(judged, NOW - timedelta(seconds=30))
    assert not lifecycle.still_dead(judged, NOW)
    assert lifecycle.still_dead(judged, None)


def test_a_dead_pid_verdict_stands_whatever_the_heartbeat() -> None:
    judged = Verdict("process 999 on here is gone", None)
    assert lifecycle.still_dead(judged, NOW)
    assert lifecycle.still_dead(judged, None)
