"""Which database errors open an outage, wherever the manager first meets them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from flask_taches.store import for_engine
from flask_taches.worker.options import ManagerOptions
from flask_taches.worker.outages import Outages
from flask_taches.worker.registry import Registration


def _registration(url: str) -> tuple[Outages, Registration]:
    store = for_engine(create_engine(url))
    return Outages(store), Registration(store, "here", ManagerOptions(), "fork")


def test_a_file_out_of_reach_met_by_the_registry_opens_the_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A directory that does not exist: SQLite cannot open the file, as on a lost mount.
    outages, registration = _registration(f"sqlite:///{tmp_path}/gone/taches.sqlite")
    with caplog.at_level(logging.INFO, logger="flask_taches"):
        outages.survive(lambda: registration.beat(0), lambda _: None)
        outages.survive(lambda: registration.beat(0), lambda _: None)

    assert outages.down
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, "the registry's own lines are held back once the outage is open"
    assert lines[0].startswith("database unreachable (cannot register in the managers table:")


def test_a_missing_table_is_a_bug_to_report_not_an_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The file is there but the schema is not: SQLite says so with an OperationalError too.
    outages, registration = _registration(f"sqlite:///{tmp_path}/empty.sqlite")
    with caplog.at_level(logging.INFO, logger="flask_taches"):
        outages.survive(lambda: registration.beat(0), lambda _: None)

    assert not outages.down
    (line,) = [record.getMessage() for record in caplog.records]
    assert line.startswith("cannot register in the managers table: no such table")
