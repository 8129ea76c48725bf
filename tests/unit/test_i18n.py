"""Labels in English and French, from TACHES_LOCALE or Flask-Babel."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_taches import Status
from flask_taches.web import i18n

#: The bundle's own French badge labels, which its users know.
BUNDLE_FR = {
    "TO_RUN": "En attente",
    "RUNNING": "En cours",
    "COMPLETED": "Terminé",
    "FAILED": "En erreur",
    "INTERRUPTED": "Interrompu",
    "CANCELLED": "Annulé",
}


def test_the_bundles_french_labels() -> None:
    for status, label in BUNDLE_FR.items():
        assert i18n.status_label(status, "fr") == label
    assert i18n.status_label(Status.WAITING, "fr") == "En attente de la tâche précédente"


def test_english_labels() -> None:
    labels = {s.value: i18n.status_label(s, "en") for s in Status}
    assert labels == {
        "WAITING": "Waiting for the previous task",
        "TO_RUN": "Queued",
        "RUNNING": "Running",
        "COMPLETED": "Completed",
        "FAILED": "Failed",
        "INTERRUPTED": "Interrupted",
        "CANCELLED": "Cancelled",
    }


def test_every_language_has_every_label_and_text() -> None:
    for language in i18n.LANGUAGES:
        assert set(i18n.STATUS_LABELS[language]) == {s.value for s in Status}
        assert set(i18n.MESSAGES[language]) == set(i18n.MESSAGES["en"])


def test_an_unknown_status_shows_as_it_is() -> None:
    assert i18n.status_label("SOMETHING", "fr") == "SOMETHING"


@pytest.mark.parametrize(
    ("locale", "language"),
    [("fr", "fr"), ("fr_FR", "fr"), ("fr-CA", "fr"), ("FR", "fr"), ("en_GB", "en"), ("de", "en")],
)
def test_normalize(locale: str, language: str) -> None:
    assert i18n.normalize(locale) == language


def test_normalize_none_and_locale_objects() -> None:
    assert i18n.normalize(None) == "en"

    class Locale:
        language = "fr"

    assert i18n.normalize(Locale()) == "fr"


@pytest.mark.taches_config(TACHES_LOCALE="fr_FR")
def test_taches_locale_setting(app: Flask) -> None:
    with app.app_context():
        assert i18n.current_language() == "fr"
        assert i18n.status_label("RUNNING") == "En cours"
        assert i18n.text("confirm.cancel", id=3) == "Annuler la tâche 3 ?"


def test_english_by_default_and_outside_an_app(app: Flask) -> None:
    assert i18n.current_language() == "en"
    with app.app_context():
        assert i18n.current_language() == "en"
        assert i18n.text("confirm.delete", id=9) == "Delete task 9?"
        assert i18n.text("confirm.delete_with_file", id=9) == "Delete task 9 and its attached file?"


@pytest.mark.parametrize(
    ("seconds", "en", "fr"),
    [
        (0, "0 s", "0 s"),
        (40.4, "40 s", "40 s"),
        (185, "3 min", "3 min"),
        (7500, "2 h 05", "2 h 05"),
    ],
)
def test_duration(seconds: float, en: str, fr: str) -> None:
    assert i18n.duration(seconds, "en") == en
    assert i18n.duration(seconds, "fr") == fr


# -- Flask-Babel --------------------------------------------------------------------------------


@pytest.mark.taches_config(TACHES_LOCALE="en")
def test_flask_babel_locale_wins(app: Flask) -> None:
    flask_babel = pytest.importorskip("flask_babel")
    chosen: dict[str, Any] = {"locale": "fr_CA"}
    flask_babel.Babel(app, locale_selector=lambda: chosen["locale"])
    with app.test_request_context():
        assert i18n.current_language() == "fr"
        assert i18n.status_label("FAILED") == "En erreur"
    chosen["locale"] = "en_US"
    with app.test_request_context():
        assert i18n.status_label("FAILED") == "Failed"


@pytest.mark.taches_config(TACHES_LOCALE="en")
def test_flask_babel_default_locale(app: Flask) -> None:
    flask_babel = pytest.importorskip("flask_babel")
    app.config["BABEL_DEFAULT_LOCALE"] = "fr"
    flask_babel.Babel(app)
    with app.test_request_context():
        assert i18n.current_language() == "fr"
    response = app.test_client().get("/taches/")
    assert '<html lang="fr">' in response.get_data(as_text=True)
