"""The ``taches`` table and the :class:`Tache` a task's code works with.

The model has its own declarative base, so ``from flask_taches import Tache``
works before any application exists; :meth:`TachesExtension.init_app` copies the
table into the application's ``db.metadata`` so that ``db.create_all()`` and
``flask db migrate`` see it, and ``db.session`` queries it like any model.

While a task runs, the runner attaches a *recorder* to the instance: logs and
progress are then written through it (throttled, fenced by the attempt), never
through an ORM session, so a task committing its own ``db.session`` cannot
overwrite its row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn, Protocol, cast

from sqlalchemy import (
    JSON,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.types import TypeDecorator

from .clock import as_utc, utcnow
from .exceptions import RetryRequested
from .lifecycle import LogEntry, log_entry
from .status import Status

#: Largest task id: ``id`` is an INTEGER column (32-bit signed on PostgreSQL and
#: MySQL); a larger number names no task, and must not reach the database.
MAX_ID = 2**31 - 1

#: Levels a log entry may have, lowest first (``debug`` is never stored).
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (portable across dialects), hands back aware UTC.

    An aware value is converted to UTC; a naive one is taken as UTC already.
    MySQL/MariaDB get microsecond precision, which their DATETIME lacks by default.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite can hand back text
            value = datetime.fromisoformat(value)
        return as_utc(value)


#: JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


#: The generated ``live_key`` column (statuses are spelled out: the migration must
#: compute the same, whatever later releases call them).
LIVE_KEY_SQL = "CASE WHEN status IN ('WAITING', 'TO_RUN', 'RUNNING') THEN unique_key END"


#: Text compared character for character, in the unique key too (MySQL and MariaDB's
#: default collations would take "import-42" and "IMPORT-42" for one signature).
ExactText = String(255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Recorder(Protocol):
    """What the runner attaches to a running task to persist its logs live."""

    def on_log(self, tache: Tache, entry: LogEntry) -> None: ...

    def on_progress(self, tache: Tache, progress: dict[str, Any]) -> None: ...

    def on_debug(self, tache: Tache, message: str, details: Any) -> None: ...


class Tache(Base):
    """One background task: what to call, with what, and how it went."""

    __tablename__ = "taches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: ``"package.module:attr"`` or ``"package.module.function"``.
    method: Mapped[str] = mapped_column(String(255))
    parametres: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Secrets for the task only: never serialised, rendered or logged.
    parametres_caches: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    signature: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: File name of the attachment inside ``TACHES_FOLDER/<id>/``.
    fichier: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=Status.TO_RUN.value)
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    logs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Not before this time; set to ``created_at`` when not given so ordering is one index.
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: Higher runs first.
    priority: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str] = mapped_column(String(64), default="default")
    #: Attempts started so far; every write of a task's process is fenced by it.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    #: Seconds (int or float); None: no limit.
    timeout: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Pid of the process running the task itself (never the manager's).
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The task a chain starts once this one completes.
    next_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("taches.id", ondelete="SET NULL"), nullable=True
    )
    #: Attempts made before the last restart: ``max_attempts`` counts the ones after.
    restart_base: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: A group's callback: how many tasks of the group (``next_id`` pointing
    #: here) have not completed yet; None for a task after one in a chain.
    waits_for: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Set by ``cancel()`` on a RUNNING task; its own process watches for it.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Dotted paths called in the task's process once its end is recorded.
    on_success: Mapped[str | None] = mapped_column(String(255), nullable=True)
    on_failure: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: The signature an ``add(..., unique=True)`` task holds while it is live.
    unique_key: Mapped[str | None] = mapped_column(ExactText, nullable=True)
    #: ``unique_key`` while the task is WAITING, TO_RUN or RUNNING, else NULL; computed
    #: by the database, so no path that ends a task can forget to free the key.
    live_key: Mapped[str | None] = mapped_column(
        ExactText, Computed(LIVE_KEY_SQL, persisted=True), nullable=True
    )

    __table_args__ = (
        # "Latest task of a signature": max(id) per signature is an index seek.
        Index("ix_taches_signature", "signature", "id"),
        # "Tasks of an owner", newest first, for the dashboard.
        Index("ix_taches_owner", "owner", "id"),
        # "Tasks of a status", newest first: the dashboard's status filter, no sort.
        Index("ix_taches_status", "status", "id"),
        # Rescue scans RUNNING rows by heartbeat age.
        Index("ix_taches_heartbeat", "status", "heartbeat_at"),
        # Tasks of a status ended in a time range: the dashboard's chart, purge, retention.
        Index("ix_taches_ended", "status", "ended_at"),
        Index("ix_taches_next_id", "next_id"),
        # One live task per unique signature: the database refuses a second one.
        Index("uq_taches_live_key", "live_key", unique=True),
        # SQLite would hand a deleted task's id to the next insert otherwise, and a
        # late process of the deleted task would pass the new row's fence.
        {"sqlite_autoincrement": True},
    )

    #: Keys never sent outside the server.
    HIDDEN = frozenset({"parametres_caches"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("parametres", {})
        kwargs.setdefault("logs", [])
        kwargs.setdefault("status", Status.TO_RUN.value)
        kwargs.setdefault("priority", 0)
        kwargs.setdefault("attempts", 0)
        super().__init__(**kwargs)

    def __repr__(self) -> str:
        return f"<Tache {self.id} {self.method} {self.status}>"

    # -- inside a task ---------------------------------------------------------

    @property
    def _recorder(self) -> Recorder | None:
        return self.__dict__.get("_taches_recorder")

    def attach_recorder(self, recorder: Recorder | None) -> None:
        """Used by the runner; ``None`` detaches."""
        self.__dict__["_taches_recorder"] = recorder

    def log(self, level: str, message: Any, details: Any = None) -> None:
        """Keep a log entry in the row (``debug`` goes to the live console only)."""
        level = str(level).lower()
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
        if level == "debug":
            self.debug(message, details)
            return
        entry = log_entry(level, str(message), utcnow(), details)
        self._append_log(entry)
        recorder = self._recorder
        if recorder is not None:
            recorder.on_log(self, entry)

    def _append_log(self, entry: LogEntry) -> None:
        """Append in place: a new list per entry would make a chatty task quadratic.

        An instance no session knows of (the runner's detached copy, or one not
        added yet) needs nothing more; the ORM does not watch inside a JSON
        value, so one it tracks (or tracked) is told that ``logs`` changed.
        """
        logs = self.logs
        if logs is None:
            self.logs = [entry]
            return
        logs.append(entry)
        if not inspect(self).transient:
            flag_modified(self, "logs")

    def info(self, message: Any, details: Any = None) -> None:
        self.log("info", message, details)

    def warning(self, message: Any, details: Any = None) -> None:
        self.log("warning", message, details)

    def error(self, message: Any, details: Any = None) -> None:
        self.log("error", message, details)

    def debug(self, message: Any, details: Any = None) -> None:
        """Shown live by ``flask taches run ID -vv``; never stored."""
        recorder = self._recorder
        if recorder is not None:
            recorder.on_debug(self, str(message), details)

    def set_progress(
        self,
        step: float,
        max: float | None = None,
        phase: int | None = None,
        phases: int | None = None,
        label: str | None = None,
    ) -> None:
        """Report how far the task is; ``max`` and ``phases`` stick once given."""
        previous = self.progress or {}
        maximum = max if max is not None else previous.get("max")
        phases = phases if phases is not None else previous.get("phases", 1)
        phase = phase if phase is not None else previous.get("phase", 1)
        progress = {
            "step": step,
            "max": maximum,
            "phase": phase,
            "phases": phases,
            "label": label if label is not None else previous.get("label"),
            "percent": progress_percent(step, maximum, phase, phases),
            "updated_at": utcnow().isoformat(),
        }
        self.progress = progress
        recorder = self._recorder
        if recorder is not None:
            recorder.on_progress(self, progress)

    @property
    def round_attempts(self) -> int:
        """Attempts since the last restart: what ``max_attempts`` is counted against."""
        return int(self.attempts or 0) - int(self.restart_base or 0)

    def retry(self, delay: float | None = None) -> NoReturn:
        """End this attempt and schedule the next, in ``delay`` seconds (None: the backoff).

        Counts as an attempt: with none left (``max_attempts``), the task ends
        FAILED saying so. A cancel asked meanwhile wins. Raises
        :class:`~flask_taches.exceptions.RetryRequested`, which the runner catches.
        """
        if delay is not None and not delay >= 0:
            raise ValueError(f"retry delay must be a number of seconds >= 0, not {delay!r}")
        raise RetryRequested(None if delay is None else float(delay))

    # -- outside -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-able data, without ``parametres_caches``."""
        data: dict[str, Any] = {}
        for column in self.__table__.columns:
            if column.key in self.HIDDEN:
                continue
            value = getattr(self, column.key)
            if isinstance(value, datetime):
                value = as_utc(value).isoformat()
            data[column.key] = value
        return data


#: The table itself, typed as a Core ``Table`` for statements built on it.
taches_table = cast(Table, Tache.__table__)


class TacheSchedule(Base):
    """What the managers know of one schedule: the latest slot a task was added for.

    A manager adds the task of a slot only if it moves ``last_slot`` forward, in the
    same transaction (see :mod:`flask_taches.store.slots`): each slot of a schedule
    gets one task, whichever managers see it, and never one older than the newest.
    """

    __tablename__ = "taches_schedules"

    #: Compared exactly, as the names are declared (MariaDB's default collation would not).
    name: Mapped[str] = mapped_column(ExactText, primary_key=True)
    #: When a manager first saw the schedule: slots before it are not missed.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_slot: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: The task added for ``last_slot``.
    last_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


schedules_table = cast(Table, TacheSchedule.__table__)

#: "Next task to run": ``WHERE status = 'TO_RUN' ORDER BY priority DESC, run_at,
#: id LIMIT n`` walks this index in its order and stops after n rows, whatever
#: the backlog (the queue, when given, is a filter on the way). DESC is honoured
#: by SQLite, PostgreSQL, MySQL 8 and MariaDB 10.8+.
Index(
    "ix_taches_ready",
    taches_table.c.status,
    taches_table.c.priority.desc(),
    taches_table.c.run_at,
    taches_table.c.id,
)


#: One row per live manager (``flask taches managers``): it registers, beats, leaves.
managers_table = Table(
    "taches_managers",
    Base.metadata,
    Column("id", Integer, primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(32), nullable=False),
    Column("queues", JSONType, nullable=False),  # a list; empty: every queue
    Column("max_running", Integer, nullable=False),
    Column("executor", String(16), nullable=False),
    Column("running", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
    # Pruning the stale rows scans by age.
    Index("ix_taches_managers_seen_at", "seen_at"),
)

#: Work one manager at a time does per interval (retention): who holds it, until when.
leases_table = Table(
    "taches_leases",
    Base.metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=True),
    Column("until", UTCDateTime(), nullable=False),
)

#: Every table of the extension, in the order ``init-db`` creates them.
ALL_TABLES = (taches_table, managers_table, leases_table, schedules_table)


def progress_percent(
    step: float, maximum: float | None, phase: int | None = 1, phases: int | None = 1
) -> float | None:
    """The bundle's formula: ``(step / max) / phases + (phase - 1) / phases``, in %."""
    if not maximum:
        return None
    phases = phases or 1
    phase = phase or 1
    fraction = (min(step, maximum) / maximum) / phases + (phase - 1) / phases
    return round(max(0.0, min(1.0, fraction)) * 100, 1)
