"""The Alembic environment of flask-taches' own history (see ``history.py``).

Run by Alembic when :mod:`flask_taches.migrations.history` calls a command: the
connection (or, for ``--sql``, the URL) and the version table come in the
config's attributes, never from an ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

config = context.config
options = {
    "version_table": config.attributes["version_table"],
    "on_version_apply": config.attributes.get("on_version_apply"),
}

if context.is_offline_mode():
    context.configure(url=config.attributes["url"], literal_binds=True, **options)
else:
    context.configure(connection=config.attributes["connection"], **options)

with context.begin_transaction():
    context.run_migrations()
