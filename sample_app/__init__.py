"""The flask-taches demo: a small Flask application that shows the product.

``flask --app sample_app run`` serves it; ``flask --app sample_app taches start
--forever`` runs its tasks (``make demo`` starts both). The database is a SQLite
file in the instance folder unless ``FLASK_SQLALCHEMY_DATABASE_URI`` says
otherwise; every ``TACHES_*`` setting may come from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask, session
from flask_sqlalchemy import SQLAlchemy

from flask_taches import TachesExtension

from .services import Catalogue

#: The two demo users; alice is an admin (she sees and manages every task).
#: What a user adds from the demo's pages is theirs (``add()`` takes the request's
#: identity as owner), so each acts on what they add; a task added without a
#: user (logged out, or from the CLI) is shared: anyone sees it, only alice may
#: cancel, restart or delete it. The demo keeps that safe default
#: (``TACHES_SHARED_ACTIONS`` False) so that it shows it.
USERS: dict[str, dict[str, Any]] = {
    "alice": {"admin": True},
    "bob": {"admin": False},
}
INSTANCE_PATH = Path(__file__).resolve().parent / "instance"
#: Only good for a demo on 127.0.0.1: set FLASK_SECRET_KEY anywhere else.
DEV_SECRET_KEY = "flask-taches-demo-not-secret"
#: The demo's own defaults; an environment variable of the same name still wins.
DEMO_SETTINGS: dict[str, Any] = {
    "TACHES_JS_POLL": 1.0,  # seconds: livelier pages than the default 5
}

db = SQLAlchemy()
taches = TachesExtension()
taches.register_service("catalogue", Catalogue.from_app)
#: A periodic task that is also unique: the stock report every night at 03:00 in
#: Paris, added by whichever manager runs then, and not again while one is live.
#: ``flask --app sample_app taches schedules`` shows it.
taches.schedule(
    "nightly-stock-report",
    "sample_app.services:ReportService.build",
    cron="0 3 * * *",
    tz="Europe/Paris",
    parametres={"seconds": 1.0},
    unique=True,
)


@taches.identity_loader
def current_user() -> str | None:
    """The demo's "login": a user name kept in the session (no password)."""
    user = session.get("user")
    return user if user in USERS else None


@taches.admin_loader
def current_user_is_admin() -> bool:
    user = current_user()
    return user is not None and bool(USERS[user]["admin"])


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """The application factory ``flask --app sample_app`` finds."""
    app = Flask(__name__, instance_path=str(INSTANCE_PATH))
    app.config.update(
        SECRET_KEY=DEV_SECRET_KEY,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{INSTANCE_PATH / 'sample.sqlite'}",
    )
    # FLASK_SECRET_KEY, FLASK_SQLALCHEMY_DATABASE_URI... from the environment win.
    app.config.from_prefixed_env()
    for key, value in DEMO_SETTINGS.items():
        if key not in os.environ:
            app.config.setdefault(key, value)
    app.config.update(config or {})
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith(f"sqlite:///{INSTANCE_PATH}"):
        os.makedirs(INSTANCE_PATH, exist_ok=True)

    db.init_app(app)
    taches.init_app(app, db)

    from . import views

    app.register_blueprint(views.blueprint)
    with app.app_context():
        db.create_all()  # zero set-up; a real app would run `flask db upgrade`
    return app
