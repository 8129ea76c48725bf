"""0.1.0's ``taches`` branch, kept in an application's history as a no-op.

Revision ID: taches_0001
Revises:
Create Date: 2026-11-27

0.1.0 shipped its revision on a branch of the application's own Alembic history,
so an application's revisions may name ``taches_0001`` as their
``down_revision``, and its ``alembic_version`` may hold it. The schema now has a
history of its own (``flask taches upgrade``, table ``taches_alembic_version``);
this revision is added to the application's history only where it is named
there, so that history stays whole, and it does nothing either way: upgrading
or downgrading the application never creates or drops the extension's tables.
"""

from __future__ import annotations

revision = "taches_0001"
down_revision: str | None = None
branch_labels = ("taches",)
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
