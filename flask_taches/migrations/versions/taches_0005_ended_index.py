"""The tasks ended in a time range, by status: an index.

Revision ID: taches_0005
Revises: taches_0004
Create Date: 2026-12-01

``ix_taches_ended`` (``status, ended_at``) serves the dashboard's last-hour chart
(the tasks of a status ended in each minute), and every "finished tasks ended
before a date" of purge and retention, without a scan of the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "taches_0005"
down_revision: str | None = "taches_0004"
branch_labels: tuple[str, ...] | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_taches_ended", "taches", ["status", "ended_at"])


def downgrade() -> None:
    op.drop_index("ix_taches_ended", table_name="taches")
