"""The managers registry and leases, on every database."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import update

from flask_taches.clock import utcnow
from flask_taches.models import leases_table, managers_table
from flask_taches.store import leases
from flask_taches.store import managers as registry
from tests.store.helpers import store

INFO = registry.ManagerInfo("host-a", 4242, "0.1.0", ("mail",), 3, "fork")


def age_manager(manager_id: int, seconds: float) -> None:
    with store().write() as conn:
        conn.execute(
            update(managers_table)
            .where(managers_table.c.id == manager_id)
            .values(seen_at=utcnow() - timedelta(seconds=seconds))
        )


def test_a_manager_joins_beats_and_leaves(db_ctx: Flask) -> None:
    manager_id = registry.join(store(), INFO)
    (found,) = registry.live(store(), 30)
    assert (found["hostname"], found["pid"], found["queues"]) == ("host-a", 4242, ["mail"])
    assert (found["max_running"], found["executor"], found["running"]) == (3, "fork", 0)
    assert registry.beat(store(), manager_id, 2, 30)
    assert registry.live_count(store(), 30) == (1, 2)
    registry.leave(store(), manager_id)
    assert registry.live(store(), 30) == []


def test_a_stale_manager_is_not_live_and_a_beat_of_another_prunes_it(db_ctx: Flask) -> None:
    stale = registry.join(store(), INFO)
    alive = registry.join(store(), INFO)
    age_manager(stale, 60)
    assert [m["id"] for m in registry.live(store(), 30)] == [alive]
    assert registry.live(store(), 90) != []  # still there, only unlisted
    assert registry.beat(store(), alive, 0, 30)
    assert [m["id"] for m in registry.live(store(), 3600)] == [alive]
    # A manager whose own row was pruned hears it from its beat.
    assert not registry.beat(store(), stale, 0, 30)


def test_a_lease_has_one_holder_until_its_time_is_up(db_ctx: Flask) -> None:
    assert leases.take(store(), "retention", "a:1", 60)
    assert not leases.take(store(), "retention", "b:2", 60)
    assert leases.take(store(), "retention", "a:1", 60), "its holder renews it"
    assert leases.take(store(), "other", "b:2", 60), "leases are per name"
    with store().write() as conn:
        conn.execute(update(leases_table).values(until=utcnow() - timedelta(seconds=1)))
    assert leases.take(store(), "retention", "b:2", 60)
    assert not leases.take(store(), "retention", "a:1", 60)
