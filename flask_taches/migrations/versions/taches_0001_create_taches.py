"""Create the ``taches`` table.

Revision ID: taches_0001
Revises:
Create Date: 2026-11-27

The first revision of the extension's own branch (label ``taches``). Types are
spelled out here rather than imported from the model, so that this revision keeps
creating the 0.1.0 schema whatever later releases change: datetimes are naive UTC
(microseconds on MySQL/MariaDB, whose DATETIME drops them by default), JSON is
JSONB on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "taches_0001"
down_revision: str | None = None
branch_labels = ("taches",)
depends_on: str | None = None

TABLE = "taches"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc_datetime() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(255), nullable=False),
        sa.Column("parametres", _json(), nullable=False),
        sa.Column("parametres_caches", _json(), nullable=True),
        sa.Column("signature", sa.String(255), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("fichier", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", _json(), nullable=True),
        sa.Column("logs", _json(), nullable=False),
        sa.Column("progress", _json(), nullable=True),
        sa.Column("created_at", _utc_datetime(), nullable=False),
        sa.Column("started_at", _utc_datetime(), nullable=True),
        sa.Column("ended_at", _utc_datetime(), nullable=True),
        sa.Column("run_at", _utc_datetime(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("hostname", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", _utc_datetime(), nullable=True),
        sa.Column("next_id", sa.Integer(), nullable=True),
        sa.Column("cancel_requested_at", _utc_datetime(), nullable=True),
        sa.Column("cancel_requested_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_taches"),
        sa.ForeignKeyConstraint(
            ["next_id"], [f"{TABLE}.id"], name="fk_taches_next_id_taches", ondelete="SET NULL"
        ),
        # SQLite must never reuse the id of a deleted task (fencing relies on ids).
        sqlite_autoincrement=True,
    )
    # The manager's claim: equality on status, then its ORDER BY, so no sort.
    op.create_index("ix_taches_ready", TABLE, ["status", sa.text("priority DESC"), "run_at", "id"])
    # The latest task of a signature: max(id) per signature.
    op.create_index("ix_taches_signature", TABLE, ["signature", "id"])
    # The tasks of an owner, newest first.
    op.create_index("ix_taches_owner", TABLE, ["owner", "id"])
    # The tasks of a status, newest first (the dashboard's filter, without a sort).
    op.create_index("ix_taches_status", TABLE, ["status", "id"])
    # Rescue: RUNNING rows by heartbeat age.
    op.create_index("ix_taches_heartbeat", TABLE, ["status", "heartbeat_at"])
    op.create_index("ix_taches_next_id", TABLE, ["next_id"])


def downgrade() -> None:
    # Dropping the table drops its indexes and its self-referencing foreign key.
    op.drop_table(TABLE)
