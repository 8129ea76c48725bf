"""Inserts: new rows on the caller's connection, their ids back in the rows' order."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from flask_taches.models import taches_table
from tests.store.helpers import new_row, row, store

MANY = 1234  # more than one insertmanyvalues page (1000 rows)


def stored_n(ids: list[int]) -> dict[int, int]:
    with store().read() as conn:
        rows = conn.execute(
            select(taches_table.c.id, taches_table.c.parametres).where(taches_table.c.id.in_(ids))
        ).all()
    return {tache_id: parametres["n"] for tache_id, parametres in rows}


def insert(rows: list[dict[str, Any]]) -> list[int]:
    with store().write() as conn:
        return store().insert(conn, rows)


def test_one_row_gives_its_id(db_ctx: Flask) -> None:
    (tache_id,) = insert([new_row(7, queue="mail")])
    assert row(tache_id)["parametres"] == {"n": 7}
    assert row(tache_id)["queue"] == "mail"


@pytest.mark.parametrize("count", [2, 3, MANY])
def test_many_rows_give_their_ids_in_order(db_ctx: Flask, count: int) -> None:
    ids = insert([new_row(n) for n in range(count)])
    assert len(ids) == count == len(set(ids))
    assert ids == sorted(ids), "later rows get later ids"
    assert stored_n(ids) == {tache_id: n for n, tache_id in enumerate(ids)}


def test_ids_keep_growing_across_inserts(db_ctx: Flask) -> None:
    first = insert([new_row(n) for n in range(5)])
    second = insert([new_row(n) for n in range(5, 10)])
    assert first[-1] < second[0]
    assert stored_n(first + second) == {tache_id: n for n, tache_id in enumerate(first + second)}


def test_rows_with_different_columns_are_inserted_together(db_ctx: Flask) -> None:
    plain = new_row(0)
    signed = new_row(1, signature="sig-1", timeout=2.5)
    hidden = new_row(2, parametres_caches={"token": "x"})
    ids = insert([plain, signed, hidden])
    assert stored_n(ids) == {ids[0]: 0, ids[1]: 1, ids[2]: 2}
    assert (row(ids[0])["signature"], row(ids[0])["timeout"]) == (None, None)
    assert (row(ids[1])["signature"], row(ids[1])["timeout"]) == ("sig-1", 2.5)
    assert row(ids[0])["parametres_caches"] is None, "a missing JSON value is SQL NULL"
    assert row(ids[2])["parametres_caches"] == {"token": "x"}


def test_nothing_inserted_when_the_transaction_rolls_back(db_ctx: Flask) -> None:
    with pytest.raises(RuntimeError, match="rolled back"), store().write() as conn:
        store().insert(conn, [new_row(n) for n in range(3)])
        raise RuntimeError("rolled back")
    with store().read() as conn:
        assert conn.execute(select(func.count()).select_from(taches_table)).scalar_one() == 0


def test_link_chain_points_each_task_at_the_next(db_ctx: Flask) -> None:
    with store().write() as conn:
        ids = store().insert(conn, [new_row(n) for n in range(3)])
        store().link_chain(conn, ids)
    assert [row(i)["next_id"] for i in ids] == [ids[1], ids[2], None]


def test_set_fichier_names_the_attached_file(db_ctx: Flask) -> None:
    with store().write() as conn:
        (tache_id,) = store().insert(conn, [new_row(0)])
        store().set_fichier(conn, tache_id, "report.csv")
    assert row(tache_id)["fichier"] == "report.csv"


def test_latest_ids_gives_the_newest_task_of_each_signature(db_ctx: Flask) -> None:
    ids = insert(
        [
            new_row(0, signature="a"),
            new_row(1, signature="b"),
            new_row(2, signature="a"),
            new_row(3),
        ]
    )
    with store().read() as conn:
        assert store().latest_ids(conn, ["a", "b", "c"]) == {"a": ids[2], "b": ids[1]}
        assert store().latest_ids(conn, []) == {}
