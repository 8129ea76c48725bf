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


def beats(url: str, caplog: pytest.LogCaptureFixture, times: int) -> tuple[Outages, list[str]]:
    """A manager's registry beating ``times`` on ``url`` under its outage filter: its lines."""
    store = for_engine(create_engine(url))
    outages = Outages(store)
    registration = Registration(store, "here", ManagerOptions(), "fork")
    with caplog.at_level(logging.INFO, logger="flask_taches"):
        for _ in range(times):
            outages.survive(lambda: registration.beat(0), lambda _: None)
    return outages, [record.getMessage() for record in caplog.records]


def test_a_file_out_of_reach_met_by_the_registry_opens_the_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A directory that does not exist: SQLite cannot open the file, as on a lost mount.
    outages, lines = beats(f"sqlite:///{tmp_path}/gone/taches.sqlite", caplog, times=2)

    assert outages.down
    assert len(lines) == 1, "the registry's own lines are held back once the outage is open"
    assert lines[0].startswith("database unreachable (cannot register in the managers table:")


def test_a_missing_table_is_a_bug_to_report_not_an_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The file is there but the schema is not: SQLite says so with an OperationalError too.
    outages, lines = beats(f"sqlite:///{tmp_path}/empty.sqlite", caplog, times=1)

    assert not outages.down
    (line,) = lines
    assert line.startswith("cannot register in the managers table: no such table")
