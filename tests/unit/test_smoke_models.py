from __future__ import annotations

from flask import Flask

from flask_taches import Status, Tache
from tests.app import taches


def test_add_and_read_back_on_every_database(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.app:create_app", parametres={"a": 1}, parametres_caches={"k": "s"})
    tache = taches.get(tache_id)
    assert isinstance(tache, Tache)
    assert tache.status == Status.TO_RUN
    assert tache.parametres == {"a": 1}
    assert "parametres_caches" not in tache.to_dict()
    assert tache.created_at.tzinfo is not None
