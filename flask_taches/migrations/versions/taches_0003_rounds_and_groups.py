"""Restart rounds and group callbacks: ``restart_base`` and ``waits_for``.

Revision ID: taches_0003
Revises: taches_0002
Create Date: 2026-12-01

``restart_base`` is the attempt count when a task was last restarted, so that
``max_attempts`` counts the attempts of the current round without the
restart changing it. ``waits_for`` is, on a group's callback, how many tasks
of the group have not completed yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "taches_0003"
down_revision: str | None = "taches_0002"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None

TABLE = "taches"


def upgrade() -> None:
    op.add_column(
        TABLE, sa.Column("restart_base", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(TABLE, sa.Column("waits_for", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:  # SQLite drops columns by a copy
        batch.drop_column("waits_for")
        batch.drop_column("restart_base")
