"""The service API (``TaskService``, which the extension is): add, chain, read, act, files."""

from __future__ import annotations

import io
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from flask_taches import (
    FichierRefused,
    InvalidTache,
    InvalidTransition,
    MethodNotFound,
    MethodRefused,
    ParametresNotJSON,
    Status,
    Tache,
    TacheNotFound,
    UncommittedSession,
)
from flask_taches.models import taches_table
from flask_taches.runner import run_one
from flask_taches.service import TaskService
from flask_taches.state import app_state
from tests.app import db, taches


def row(tache_id: int) -> dict[str, Any]:
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        return dict(found.mappings().one())


def count() -> int:
    with taches.store().read() as conn:
        return int(conn.execute(select(func.count()).select_from(taches_table)).scalar_one())


# -- add ---------------------------------------------------------------------------------------


def test_add_saves_a_task_to_run_with_defaults(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1}, signature="sum")
    stored = row(tache_id)
    assert stored["status"] == Status.TO_RUN
    assert (stored["method"], stored["parametres"], stored["signature"]) == (
        "tests.tasks:add",
        {"a": 1},
        "sum",
    )
    assert stored["created_at"].tzinfo is timezone.utc
    assert stored["run_at"] == stored["created_at"]
    assert (stored["queue"], stored["priority"], stored["attempts"]) == ("default", 0, 0)
    assert (stored["max_attempts"], stored["timeout"], stored["owner"]) == (1, None, None)
    assert stored["logs"] == []


def test_add_a_tache_object_with_options(db_ctx: Flask) -> None:
    tache = Tache(method="tests.tasks:add", parametres={"a": 2}, signature="obj")
    tache_id = taches.add(tache, priority=5, queue="slow", max_attempts=3, timeout=2.5)
    assert tache.id == tache_id
    stored = row(tache_id)
    assert (stored["priority"], stored["queue"]) == (5, "slow")
    assert (stored["max_attempts"], stored["timeout"]) == (3, 2.5)
    with pytest.raises(InvalidTache, match="already saved"):
        taches.add(tache)


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("os:getcwd", MethodRefused),
        ("json.dumps", MethodRefused),
        ("tests.tasks:os.getcwd", MethodRefused),  # a module tests.tasks imported
        ("tests.tasks:select", MethodRefused),  # a function it imported
        ("tests.tasks:does_not_exist", MethodNotFound),
        ("tests.nowhere:add", MethodNotFound),
        ("not a method", MethodNotFound),
    ],
)
def test_add_refuses_a_method_outside_the_allowlist_or_unknown(
    app_ctx: Flask, method: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        taches.add(method)
    assert count() == 0


@pytest.mark.parametrize(
    "options",
    [
        {"parametres": {"when": datetime(2030, 1, 1)}},
        {"parametres": {1: "int key"}},
        {"parametres": ["a", "list"]},
        {"parametres": {"x": float("nan")}},
        {"parametres": {"s": {1, 2}}},
        {"parametres_caches": {"k": object()}},
        {"parametres_caches": "token"},
    ],
    ids=["datetime", "int-key", "list", "nan", "set", "caches-object", "caches-str"],
)
def test_add_refuses_parametres_that_are_not_json(app_ctx: Flask, options: dict[str, Any]) -> None:
    with pytest.raises(ParametresNotJSON):
        taches.add("tests.tasks:add", **options)
    assert count() == 0


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"timeout": 0}, {"timeout": -1}, {"run_at": "tomorrow"}, {"color": 1}],
)
def test_add_refuses_bad_options(app_ctx: Flask, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidTache):
        taches.add("tests.tasks:add", **options)
    assert count() == 0


@pytest.mark.parametrize(
    "options",
    [
        {"priority": 10**12},
        {"priority": -(2**31) - 1},
        {"max_attempts": 2**31},
        {"signature": "s" * 256},
        {"queue": "q" * 65},
        {"timeout": float("inf")},
        {"timeout": 1e300},
        {"owner": "o" * 256},
    ],
    ids=[
        "priority",
        "negative-priority",
        "max-attempts",
        "signature",
        "queue",
        "inf",
        "huge-timeout",
        "owner",
    ],
)
def test_add_refuses_what_a_column_cannot_store_on_any_database(
    db_ctx: Flask, options: dict[str, Any]
) -> None:
    """SQLite would store these; PostgreSQL and MySQL/MariaDB answer a driver error."""
    with pytest.raises(InvalidTache) as raised:
        taches.add("tests.tasks:add", **options)
    assert "\n" not in str(raised.value)
    assert count() == 0
    edge = {"priority": 2**31 - 1, "signature": "s" * 255, "queue": "q" * 64, "timeout": 1e30}
    assert row(taches.add("tests.tasks:add", **edge))["signature"] == "s" * 255


def test_run_at_aware_is_converted_and_naive_is_utc(db_ctx: Flask) -> None:
    paris_noon = datetime(2030, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    aware = taches.add("tests.tasks:add", run_at=paris_noon)
    naive = taches.add("tests.tasks:add", run_at=datetime(2030, 6, 1, 12, 0))
    assert row(aware)["run_at"] == datetime(2030, 6, 1, 10, 0, tzinfo=timezone.utc)
    assert row(naive)["run_at"] == datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_owner_explicit_or_none_outside_a_request(
    db_ctx: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(taches.hooks, "identity_loader", lambda: "alice")
    assert row(taches.add("tests.tasks:add"))["owner"] is None, "no request: no identity"
    assert row(taches.add("tests.tasks:add", owner="bob"))["owner"] == "bob"
    with db_ctx.test_request_context("/"):
        assert row(taches.add("tests.tasks:add"))["owner"] == "alice"
        assert row(taches.add("tests.tasks:add", owner=None))["owner"] is None


def test_add_many_saves_all_or_nothing(db_ctx: Flask) -> None:
    ids = taches.add_many(["tests.tasks:add", Tache(method="tests.tasks:raises")])
    assert [row(i)["status"] for i in ids] == [Status.TO_RUN, Status.TO_RUN]
    with pytest.raises(MethodRefused):
        taches.add_many(["tests.tasks:add", "os:getcwd"])
    assert count() == 2


# -- chain and latest ------------------------------------------------------------------------


def test_a_chain_of_three_runs_in_order_and_stops_on_failure(db_ctx: Flask) -> None:
    ids = taches.chain(
        Tache(method="tests.tasks:add", parametres={"a": 1}),
        "tests.tasks:raises",
        Tache(method="tests.tasks:add", parametres={"a": 3}),
    )
    first, second, third = ids
    assert [row(i)["status"] for i in ids] == [Status.TO_RUN, Status.WAITING, Status.WAITING]
    assert [row(i)["next_id"] for i in ids] == [second, third, None]
    assert run_one(first) is Status.COMPLETED
    assert [row(i)["status"] for i in ids] == [Status.COMPLETED, Status.TO_RUN, Status.WAITING]
    assert run_one(second) is Status.FAILED
    assert row(third)["status"] == Status.CANCELLED
    assert f"task {second} before it in the chain ended FAILED" in row(third)["logs"][-1]["message"]


def test_a_chain_needs_two_tasks(app_ctx: Flask) -> None:
    with pytest.raises(InvalidTache):
        taches.chain("tests.tasks:add")


def test_latest_is_the_newest_task_of_a_signature(db_ctx: Flask) -> None:
    taches.add("tests.tasks:add", signature="export")
    newest = taches.add("tests.tasks:add", signature="export")
    other = taches.add("tests.tasks:add", signature="import")
    latest = taches.latest("export")
    assert latest is not None
    assert latest.id == newest
    other_latest = taches.latest("import")
    assert other_latest is not None
    assert other_latest.id == other
    assert taches.latest("nothing") is None
    assert taches.get(999999) is None


# -- cancel, restart, delete ------------------------------------------------------------------


def test_cancel_rules(db_ctx: Flask) -> None:
    store = taches.store()
    waiting_chain = taches.chain("tests.tasks:add", "tests.tasks:add")
    assert taches.cancel(waiting_chain[0], who="ann") is Status.CANCELLED
    assert row(waiting_chain[0])["logs"][-1]["message"].startswith("cancelled by ann at ")
    assert row(waiting_chain[1])["status"] == Status.CANCELLED, "the rest of the chain"
    assert taches.cancel(waiting_chain[0]) is None, "already finished"

    running = taches.add("tests.tasks:add")
    store.claim_one(running)
    assert taches.cancel(running) is Status.RUNNING, "its own process will stop it"
    stored = row(running)
    assert stored["status"] == Status.RUNNING
    assert stored["cancel_requested_by"] == "cli"
    assert stored["cancel_requested_at"] is not None
    with pytest.raises(TacheNotFound):
        taches.cancel(999999)


def test_restart_rules(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:raises")
    with pytest.raises(InvalidTransition, match="nothing to restart"):
        taches.restart(tache_id)
    assert run_one(tache_id) is Status.FAILED
    taches.restart(tache_id)
    stored = row(tache_id)
    assert (stored["status"], stored["result"], stored["ended_at"]) == (Status.TO_RUN, None, None)
    assert stored["logs"][-1]["message"] == "restarted: up to 1 attempt(s) from attempt 2"
    assert run_one(tache_id) is Status.FAILED
    assert row(tache_id)["attempts"] == 2
    with pytest.raises(TacheNotFound):
        taches.restart(999999)


def test_delete_rules(db_ctx: Flask) -> None:
    first, second = taches.chain("tests.tasks:add", "tests.tasks:add")
    running = taches.add("tests.tasks:add")
    taches.store().claim_one(running)
    with pytest.raises(InvalidTransition, match="RUNNING"):
        taches.delete(running)
    taches.delete(second)
    assert taches.get(second) is None
    assert row(first)["next_id"] is None, "the chain no longer points at it"
    with pytest.raises(TacheNotFound):
        taches.delete(second)


@pytest.mark.parametrize("action", ["cancel", "restart", "delete", "purge"])
def test_an_action_never_rolls_back_the_callers_uncommitted_work(
    db_ctx: Flask, action: str
) -> None:
    """add(commit=False) then an action in the same request: the new task must not
    be lost, and SQLite must not wait on the request's own write lock."""
    other = taches.add("tests.tasks:add", parametres={"a": 1})
    if action in ("restart", "delete"):
        taches.cancel(other)
    calls = {
        "cancel": lambda: taches.cancel(other),
        "restart": lambda: taches.restart(other),
        "delete": lambda: taches.delete(other),
        "purge": lambda: taches.purge(timedelta(0)),
    }
    new = taches.add("tests.tasks:add", parametres={"a": 2}, commit=False)
    with pytest.raises(UncommittedSession, match=f"commit db.session before {action}\\(\\)"):
        calls[action]()
    db.session.commit()
    db.session.remove()
    assert row(new)["status"] == Status.TO_RUN, "the caller's task was kept"
    calls[action]()  # committed: the action goes through


def test_an_action_refuses_a_session_with_written_and_pending_changes(db_ctx: Flask) -> None:
    other = taches.add("tests.tasks:add", parametres={"a": 1})
    tache = Tache(method="tests.tasks:add", parametres={"a": 3})
    taches.add(tache, commit=False)
    tache.priority = 5  # written, and one more change pending
    with pytest.raises(UncommittedSession):
        taches.cancel(other)
    db.session.commit()
    assert row(tache.id)["priority"] == 5


def test_an_action_refuses_a_session_with_pending_objects(db_ctx: Flask) -> None:
    other = taches.add("tests.tasks:add", parametres={"a": 1})
    db.session.add(Tache(method="tests.tasks:add", parametres={"a": 4}))
    with pytest.raises(UncommittedSession):
        taches.cancel(other)
    assert len(db.session.new) == 1, "nothing rolled back"
    db.session.rollback()


def test_an_action_ends_an_idle_read_transaction(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    assert taches.get(tache_id) is not None  # the session now reads in a transaction
    assert taches.cancel(tache_id) is Status.CANCELLED
    db.session.commit()  # the session's flag was cleared with its transaction
    taches.restart(tache_id)
    assert row(tache_id)["status"] == Status.TO_RUN


def test_get_and_latest_see_a_change_made_since_the_sessions_first_read(db_ctx: Flask) -> None:
    """MySQL/MariaDB's REPEATABLE READ would keep showing the first snapshot."""
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1}, signature="fresh")
    assert taches.get_or_raise(tache_id).status == Status.TO_RUN
    assert taches.latest("fresh").status == Status.TO_RUN  # type: ignore[union-attr]
    (claimed,) = taches.store().claim_batch(1, max_running=5, hostname="elsewhere")
    taches.store().record_end(tache_id, claimed.attempt, Status.COMPLETED, result=3)
    assert taches.get_or_raise(tache_id).status == Status.COMPLETED
    newer = Tache(method="tests.tasks:add", parametres={"a": 2}, signature="fresh")
    with taches.store().write() as conn:  # another process adds one
        conn.execute(taches_table.insert().values(**_row_values(newer)))
    assert taches.latest("fresh").id > tache_id  # type: ignore[union-attr]


def test_get_keeps_the_callers_uncommitted_work(db_ctx: Flask) -> None:
    new = taches.add("tests.tasks:add", parametres={"a": 1}, commit=False)
    assert taches.get_or_raise(new).status == Status.TO_RUN  # its own write, visible
    assert taches.get(2**31) is None
    db.session.commit()
    db.session.remove()
    assert row(new)["status"] == Status.TO_RUN


def _row_values(tache: Tache) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {
        "method": tache.method,
        "parametres": tache.parametres,
        "signature": tache.signature,
        "status": Status.TO_RUN.value,
        "logs": [],
        "created_at": now,
        "run_at": now,
        "priority": 0,
        "queue": "default",
        "attempts": 0,
        "max_attempts": 1,
    }


# -- figures and the pages' rescue ------------------------------------------------------------


def test_the_extension_is_the_apps_service(app_ctx: Flask) -> None:
    assert isinstance(taches, TaskService)
    assert app_state().service is taches


def test_stats_are_the_stores_figures(db_ctx: Flask) -> None:
    taches.add_many(["tests.tasks:add", "tests.tasks:add"])
    taches.add("tests.tasks:add", queue="slow")
    figures = taches.stats(windows=(1, 60))
    assert set(figures) == set(taches.store().stats())
    assert figures["by_status"]["TO_RUN"] == 3
    assert figures["by_queue"] == {"default": {"TO_RUN": 2}, "slow": {"TO_RUN": 1}}
    assert [window["minutes"] for window in figures["throughput"]] == [1, 60]


def test_rescue_stale_interrupts_a_dead_task_at_most_once_per_heartbeat(db_ctx: Flask) -> None:
    here = socket.gethostname()
    store = taches.store()
    first, second = taches.add_many(["tests.tasks:add", "tests.tasks:add"])
    for tache_id in (first, second):
        attempt = store.claim_one(tache_id, hostname=here)
        store.record_start(tache_id, attempt, 999_999, here)  # a pid that is gone
    app_state().last_page_rescue = float("-inf")
    rescued = taches.rescue_stale()
    assert sorted((r.id, r.status) for r in rescued) == [
        (first, Status.INTERRUPTED),
        (second, Status.INTERRUPTED),
    ]
    assert row(first)["status"] == Status.INTERRUPTED
    third = taches.add("tests.tasks:add")
    attempt = store.claim_one(third, hostname=here)
    store.record_start(third, attempt, 999_999, here)
    assert taches.rescue_stale() == [], "asked again within TACHES_HEARTBEAT: nothing done"
    assert row(third)["status"] == Status.RUNNING


# -- attached files ----------------------------------------------------------------------------


def upload(name: str, content: bytes = b"cells") -> FileStorage:
    return FileStorage(stream=io.BytesIO(content), filename=name)


def test_an_upload_with_a_forged_name_stays_in_its_folder(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", fichier=upload("../../etc/passwd.xlsx"))
    tache = taches.get_or_raise(tache_id)
    path = taches.fichier_path(tache)
    assert path is not None
    folder = taches.folder() / str(tache_id)
    assert path.parent == folder
    assert tache.fichier == "etc_passwd.xlsx"
    assert path.read_bytes() == b"cells"
    taches.delete(tache_id)
    assert not folder.exists(), "deleting the task removes its file"


def test_a_local_file_is_copied(db_ctx: Flask, tmp_path: Path) -> None:
    source = tmp_path / "report.csv"
    source.write_text("a,b\n")
    tache_id = taches.add("tests.tasks:add", fichier=source)
    path = taches.fichier_path(taches.get_or_raise(tache_id))
    assert path is not None
    assert path.read_text() == "a,b\n"
    assert source.exists()


@pytest.mark.parametrize("name", ["tool.exe", "noextension", "../.xlsx", ""])
def test_a_refused_file_saves_nothing(app_ctx: Flask, name: str) -> None:
    with pytest.raises(FichierRefused):
        taches.add("tests.tasks:add", fichier=upload(name))
    assert count() == 0
    folder = taches.folder()
    assert not folder.exists() or not any(folder.iterdir())


def test_purge_refuses_unfinished_or_unknown_statuses(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:returns_nothing")
    for statuses in (["TO_RUN"], ["running"], ["DONE"]):
        with pytest.raises(InvalidTache):
            taches.purge(timedelta(days=0), statuses)
    assert taches.purge(timedelta(days=0)) == 0
    assert taches.get(tache_id) is not None, "a waiting task is never purged"
