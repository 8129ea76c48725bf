"""RQ's no-op task (``rq worker`` imports it by its dotted path)."""

from __future__ import annotations

from bench.peers.report import report


def noop(key: str, port: int) -> None:
    report(key, port)
