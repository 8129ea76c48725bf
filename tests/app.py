"""The application the tests (and their ``flask`` subprocesses) run.

``flask --app tests.app:create_app`` in a subprocess builds the same app as
the ``app`` fixture: the database comes from ``FT_TEST_DATABASE_URL`` and any
``TACHES_*`` setting from the environment, as a user's ``.env`` would give.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_taches import TachesExtension

DATABASE_URL_VARIABLE = "FT_TEST_DATABASE_URL"
INSTANCE_PATH_VARIABLE = "FT_TEST_INSTANCE_PATH"
#: Packages besides ``tests`` whose tasks a subprocess may run (comma-separated).
EXTRA_MODULES_VARIABLE = "FT_TEST_EXTRA_MODULES"

db = SQLAlchemy()
taches = TachesExtension()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    instance_path = os.environ.get(INSTANCE_PATH_VARIABLE)
    extra_modules = os.environ.get(EXTRA_MODULES_VARIABLE, "")
    app = Flask("tests", instance_path=instance_path)
    app.config.update(
        SECRET_KEY="tests",
        SQLALCHEMY_DATABASE_URI=os.environ[DATABASE_URL_VARIABLE],
        TACHES_ALLOWED_MODULES=["tests", *filter(None, extra_modules.split(","))],
    )
    app.config.update(config or {})
    db.init_app(app)
    taches.init_app(app, db)
    signal_log = os.environ.get("FT_TEST_SIGNAL_LOG")
    if signal_log:  # a manager of the signals tests: its processes' signals go to a file
        from tests.hook_tasks import connect_receivers

        connect_receivers(app, signal_log)
    return app
