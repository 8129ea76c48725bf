"""Unique tasks and schedules.

Revision ID: taches_0004
Revises: taches_0003
Create Date: 2026-12-01

``unique_key`` is the signature an ``add(..., unique=True)`` task holds;
``live_key`` is computed by the database (``unique_key`` while the task is
WAITING, TO_RUN or RUNNING, else NULL) and unique, so two live tasks never hold
one signature. SQLite can only add a VIRTUAL generated column to a table;
PostgreSQL only has STORED ones. ``taches_schedules`` keeps, per schedule, the
latest slot a manager added a task for.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "taches_0004"
down_revision: str | None = "taches_0003"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

TABLE = "taches"
SCHEDULES = "taches_schedules"
LIVE_KEY_SQL = "CASE WHEN status IN ('WAITING', 'TO_RUN', 'RUNNING') THEN unique_key END"


def _utc_datetime() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _exact_text() -> sa.types.TypeEngine[Any]:
    """Compared character for character (MariaDB's default collation ignores case)."""
    binary = mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin")
    return sa.String(255).with_variant(binary, "mysql", "mariadb")


def upgrade() -> None:
    stored = op.get_bind().dialect.name != "sqlite"
    op.add_column(TABLE, sa.Column("unique_key", _exact_text(), nullable=True))
    op.add_column(
        TABLE,
        sa.Column(
            "live_key", _exact_text(), sa.Computed(LIVE_KEY_SQL, persisted=stored), nullable=True
        ),
    )
    op.create_index("uq_taches_live_key", TABLE, ["live_key"], unique=True)
    op.create_table(
        SCHEDULES,
        sa.Column("name", _exact_text(), nullable=False),
        sa.Column("created_at", _utc_datetime(), nullable=False),
        sa.Column("last_slot", _utc_datetime(), nullable=True),
        sa.Column("last_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_taches_schedules"),
    )


def downgrade() -> None:
    op.drop_table(SCHEDULES)
    op.drop_index("uq_taches_live_key", table_name=TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("live_key")
        batch.drop_column("unique_key")
