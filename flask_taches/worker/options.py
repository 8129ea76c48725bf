"""What a manager is told: ``flask taches start``'s options over the ``TACHES_*`` settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import EXECUTORS
from ..exceptions import ConfigurationError
from .executors.pool_child import MEGABYTE, ChildLimits


@dataclass(frozen=True)
class ManagerOptions:
    """What ``flask taches start`` takes; defaults come from the ``TACHES_*`` settings."""

    loop: int = 10
    sleep: float = 6.0
    max_running: int = 5
    #: Most tasks this manager runs at once; None: ``max_running``.
    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    executor: str = "fork"
    forever: bool = False
    poll: float = 0.2
    idle_poll: float = 5.0
    heartbeat: float = 5.0
    heartbeat_timeout: float = 30.0
    kill_grace: float = 5.0
    drain_grace: float = 30.0
    verbosity: int = 0
    max_tasks_per_child: int = 1000
    #: Megabytes; None: no limit.
    max_memory_per_child: int | None = None
    #: Add the schedules' due slots (``--no-schedules``: this manager only runs tasks).
    schedules: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **overrides: Any) -> ManagerOptions:
        """The app's settings, then every override that is not None."""
        values: dict[str, Any] = {
            "loop": config["TACHES_LOOP"],
            "sleep": config["TACHES_SLEEP"],
            "max_running": config["TACHES_MAX"],
            "concurrency": config["TACHES_CONCURRENCY"],
            "queues": tuple(config["TACHES_QUEUES"] or ()),
            "executor": config["TACHES_EXECUTOR"],
            "poll": config["TACHES_POLL"],
            "idle_poll": config["TACHES_IDLE_POLL"],
            "heartbeat": config["TACHES_HEARTBEAT"],
            "heartbeat_timeout": config["TACHES_HEARTBEAT_TIMEOUT"],
            "kill_grace": config["TACHES_KILL_GRACE"],
            "drain_grace": config["TACHES_DRAIN_GRACE"],
            "max_tasks_per_child": config["TACHES_MAX_TASKS_PER_CHILD"],
            "max_memory_per_child": config["TACHES_MAX_MEMORY_PER_CHILD"],
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        options = cls(**values)
        options.check()
        return options

    def check(self) -> None:
        """Raise :class:`ConfigurationError` for options no manager can run with."""
        if self.executor not in EXECUTORS:
            choices = ", ".join(repr(name) for name in EXECUTORS)
            raise ConfigurationError(f"executor {self.executor!r}: use one of {choices}")
        if self.loop < 1 or self.max_running < 1:
            raise ConfigurationError("--loop and --max must be at least 1")
        if self.concurrency is not None and self.concurrency < 1:
            raise ConfigurationError("--concurrency (TACHES_CONCURRENCY) must be at least 1")
        if (
            min(
                self.sleep,
                self.poll,
                self.idle_poll,
                self.heartbeat,
                self.kill_grace,
                self.drain_grace,
            )
            < 0
        ):
            raise ConfigurationError("durations must not be negative")
        if self.max_tasks_per_child < 1:
            raise ConfigurationError("TACHES_MAX_TASKS_PER_CHILD must be at least 1")
        if self.max_memory_per_child is not None and self.max_memory_per_child < 1:
            raise ConfigurationError("TACHES_MAX_MEMORY_PER_CHILD must be at least 1 (MB)")

    @property
    def slots(self) -> int:
        """Most tasks this manager runs at once: ``--concurrency``, never over ``--max``."""
        return min(self.concurrency or self.max_running, self.max_running)

    @property
    def child_limits(self) -> ChildLimits:
        """When a child of the pool executor is replaced."""
        memory = self.max_memory_per_child
        return ChildLimits(self.max_tasks_per_child, None if memory is None else memory * MEGABYTE)

    @property
    def check_every(self) -> float:
        """Seconds between two rescue/supervision passes."""
        return max(0.05, min(self.heartbeat, self.sleep or self.heartbeat))

    @property
    def lifetime(self) -> float | None:
        """Seconds the manager claims for (``loop`` x ``sleep``); None with ``forever``."""
        return None if self.forever else self.loop * self.sleep
