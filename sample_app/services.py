"""The demo's tasks: what an application's own service classes look like.

Each task is an instance method: flask-taches builds the class by injecting
its ``__init__`` parameters (``logger``, or the ``catalogue`` service the app
registered), then calls the method with the task's ``parametres``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask

from flask_taches import Tache

#: Stock of the stand-in catalogue (name, units); ``SAMPLE_CATALOGUE`` overrides it.
DEFAULT_CATALOGUE = (
    ("apples", 120),
    ("pears", 80),
    ("plums", 45),
    ("cherries", 300),
    ("quinces", 12),
    ("figs", 64),
)


@dataclass
class Catalogue:
    """A stand-in for an application service (an API client, a mailer, a repository).

    Registered with ``taches.register_service("catalogue", Catalogue.from_app)``:
    a method is a factory, built once per task run, with ``app`` injected.
    """

    stock: dict[str, int]

    @classmethod
    def from_app(cls, app: Flask) -> Catalogue:
        return cls(dict(app.config.get("SAMPLE_CATALOGUE", DEFAULT_CATALOGUE)))

    def items(self) -> list[str]:
        return sorted(self.stock)

    def count(self, item: str) -> int:
        return self.stock[item]


class DemoService:
    """The task the demo page adds: logs and progress over a few seconds.

    ``logger`` is the task's own logger: its records (INFO and up) land in the
    task's logs like ``tache.info()``, and on the console of ``run -vv``.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def demo(self, tache: Tache, seconds: float = 5.0, steps: int = 20) -> dict[str, Any]:
        """Two phases: a short "Preparing", then ``steps`` items, ``seconds`` in all."""
        seconds = max(0.0, float(seconds))
        steps = max(1, int(steps))
        preparing = max(1, steps // 4)
        pause = seconds / (preparing + steps)  # seconds per step
        tache.info("Demo task started", {"seconds": seconds, "steps": steps})
        for step in range(1, preparing + 1):
            time.sleep(pause)
            tache.set_progress(step, preparing, phase=1, phases=2, label="Preparing")
        self.logger.info("Prepared %d items", steps)
        for step in range(1, steps + 1):
            time.sleep(pause)
            tache.set_progress(step, steps, phase=2, label=f"Item {step} of {steps}")
            tache.debug(f"item {step} done")
            if step == (steps + 1) // 2:
                tache.info("Half way there")
        tache.info("Demo task done")
        return {"items": steps, "seconds": seconds}

    def chatty(self, tache: Tache, seconds: float = 5.0, every: float = 0.5) -> int:
        """Logs a line every ``every`` seconds for ``seconds``: a log to watch grow."""
        lines = max(1, round(max(0.0, float(seconds)) / max(0.05, float(every))))
        for line in range(1, lines + 1):
            time.sleep(max(0.05, float(every)))
            tache.info(f"line {line} of {lines}")
            tache.set_progress(line, lines, label=f"line {line}")
        return lines

    def fail(self, tache: Tache, seconds: float = 1.0) -> None:
        """Logs, reports some progress, then raises: the task ends FAILED."""
        tache.info("This task fails on purpose")
        tache.set_progress(1, 2, label="Trying")
        time.sleep(max(0.0, float(seconds)))
        tache.warning("Something looks wrong", {"hint": "the next step raises"})
        raise RuntimeError("the demo failure: this task always fails")


class ReportService:
    """A task that uses a registered service, injected by name into ``__init__``."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def build(self, tache: Tache, seconds: float = 3.0) -> dict[str, Any]:
        """Counts the catalogue's stock item by item; the result is the report."""
        items = self.catalogue.items()
        pause = max(0.0, float(seconds)) / len(items)  # seconds per item
        counts: dict[str, int] = {}
        for index, item in enumerate(items, start=1):
            time.sleep(pause)
            counts[item] = self.catalogue.count(item)
            tache.set_progress(index, len(items), label=f"Counting {item}")
        tache.info("Report ready", {"items": len(counts)})
        return {"items": len(counts), "units": sum(counts.values())}
