"""What operating the extension needs: the managers registry, leases, end hooks.

Revision ID: taches_0002
Revises: taches_0001
Create Date: 2026-12-01

- ``taches_managers``: one row per live manager (``flask taches managers``);
- ``taches_leases``: work one manager at a time does per interval (retention);
- ``taches.on_success`` / ``taches.on_failure``: dotted paths called in the
  task's process once its end is recorded.

Types are spelled out here, as in the first revision, so that this one keeps
creating the same schema whatever later releases change in the models.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "taches_0002"
down_revision: str | None = "taches_0001"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _utc_datetime() -> sa.types.TypeEngine[Any]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "taches_managers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("queues", _json(), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=False),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("started_at", _utc_datetime(), nullable=False),
        sa.Column("seen_at", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_taches_managers"),
    )
    op.create_index("ix_taches_managers_seen_at", "taches_managers", ["seen_at"])
    op.create_table(
        "taches_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("until", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_taches_leases"),
    )
    # One ALTER each: SQLite adds one column per statement.
    op.add_column("taches", sa.Column("on_success", sa.String(255), nullable=True))
    op.add_column("taches", sa.Column("on_failure", sa.String(255), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would lose the table's AUTOINCREMENT.
    op.drop_column("taches", "on_failure")
    op.drop_column("taches", "on_success")
    op.drop_table("taches_leases")
    op.drop_index("ix_taches_managers_seen_at", table_name="taches_managers")
    op.drop_table("taches_managers")
