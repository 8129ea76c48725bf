"""The application the benchmark's managers load (``flask --app bench.app:create_app``).

The database comes from ``BENCH_DATABASE_URL``; every other setting keeps its
default (or a ``TACHES_*`` variable), so the figures are those of a stock setup.
"""

from __future__ import annotations

import os
import tempfile

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_taches import TachesExtension

DATABASE_URL_VARIABLE = "BENCH_DATABASE_URL"

db = SQLAlchemy()
taches = TachesExtension()


def create_app() -> Flask:
    app = Flask("bench", instance_path=os.path.join(tempfile.gettempdir(), "taches-bench"))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ[DATABASE_URL_VARIABLE],
        TACHES_ALLOWED_MODULES=["bench"],
    )
    db.init_app(app)
    taches.init_app(app, db)
    return app
