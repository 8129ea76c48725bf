"""``TACHES_*`` settings: defaults, environment variables, ``.env`` through ``flask``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_taches import ConfigurationError, TachesExtension
from flask_taches.config import SETTINGS, SETTINGS_BY_NAME, Setting, apply_defaults, convert

REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 120  # seconds, for one flask subprocess

#: An environment string for each kind of setting, and what it must become.
SAMPLES: dict[str, tuple[str, object]] = {
    "int": (" 7 ", 7),
    "float": ("2.5", 2.5),
    "str": ("subprocess", "subprocess"),
    "bool": ("yes", True),
    "list": (" a, b ,,c ", ["a", "b", "c"]),
    "object": ("myapp.auth:is_admin", "myapp.auth:is_admin"),
    "json": ('{"n": {"every": 60}}', {"n": {"every": 60}}),
}

#: Values an environment variable of that kind must refuse.
BAD_VALUES = {"int": "seven", "float": "1.5.2", "bool": "maybe", "json": "{nightly"}


def make_app(tmp_path: Path, **config: object) -> Flask:
    app = Flask("tests", instance_path=str(tmp_path / "instance"))
    app.config.update(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'config.sqlite'}", **config)
    SQLAlchemy(app)
    return app


def test_every_kind_of_setting_has_a_sample() -> None:
    assert {setting.kind for setting in SETTINGS} <= set(SAMPLES)


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_each_environment_variable_is_converted_to_its_type(setting: Setting) -> None:
    raw, expected = SAMPLES[setting.kind]
    config: dict[str, object] = {}

    apply_defaults(config, {setting.name: raw})

    assert config[setting.name] == expected
    assert type(config[setting.name]) is type(expected)


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s.optional], ids=lambda s: s.name)
def test_an_empty_optional_variable_means_none(setting: Setting) -> None:
    config: dict[str, object] = {}

    apply_defaults(config, {setting.name: "  "})

    assert config[setting.name] is None


@pytest.mark.parametrize(
    "setting", [s for s in SETTINGS if s.kind in BAD_VALUES], ids=lambda s: s.name
)
def test_a_bad_value_is_a_one_line_configuration_error(setting: Setting) -> None:
    with pytest.raises(ConfigurationError) as caught:
        convert(setting, BAD_VALUES[setting.kind])

    message = str(caught.value)
    assert "\n" not in message
    assert setting.name in message
    assert repr(BAD_VALUES[setting.kind]) in message


def test_an_empty_required_number_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="TACHES_MAX"):
        convert(SETTINGS_BY_NAME["TACHES_MAX"], "")


def test_defaults_apply_when_neither_app_nor_environment_sets_a_key() -> None:
    config: dict[str, object] = {}

    apply_defaults(config, {})

    assert config == {setting.name: setting.default for setting in SETTINGS}


def test_list_defaults_are_copies_per_app() -> None:
    first: dict[str, list[str]] = {}
    second: dict[str, list[str]] = {}
    apply_defaults(first, {})
    apply_defaults(second, {})

    first["TACHES_ALLOWED_EXTENSIONS"].append("exe")

    assert "exe" not in second["TACHES_ALLOWED_EXTENSIONS"]
    assert "exe" not in SETTINGS_BY_NAME["TACHES_ALLOWED_EXTENSIONS"].default


def test_init_app_reads_the_environment_where_the_app_set_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACHES_MAX", "3")
    monkeypatch.setenv("TACHES_SLEEP", "0.5")
    monkeypatch.setenv("TACHES_QUEUES", "mail, pdf")
    monkeypatch.setenv("TACHES_TIMEOUT", "")
    app = make_app(tmp_path, TACHES_MAX=9)

    TachesExtension(app)

    assert app.config["TACHES_MAX"] == 9  # the application's own value wins
    assert app.config["TACHES_SLEEP"] == 0.5
    assert app.config["TACHES_QUEUES"] == ["mail", "pdf"]
    assert app.config["TACHES_TIMEOUT"] is None
    assert app.config["TACHES_LOOP"] == 10


def test_init_app_refuses_a_bad_environment_value_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TACHES_HEARTBEAT", "five seconds")
    app = make_app(tmp_path)

    with pytest.raises(ConfigurationError) as caught:
        TachesExtension(app)

    assert "\n" not in str(caught.value)
    assert "TACHES_HEARTBEAT" in str(caught.value)
    assert "taches" not in app.extensions


def test_init_app_refuses_an_unknown_executor(tmp_path: Path) -> None:
    app = make_app(tmp_path, TACHES_EXECUTOR="thread")

    with pytest.raises(ConfigurationError, match="TACHES_EXECUTOR"):
        TachesExtension(app)


PROJECT = """
import json

import click
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from flask_taches import TachesExtension

db = SQLAlchemy()
taches = TachesExtension()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///project.sqlite"
    app.config["TACHES_POLL"] = 1.0  # set in code: .env must not change it
    db.init_app(app)
    taches.init_app(app, db)

    @app.cli.command("settings")
    def settings():
        names = ["TACHES_MAX", "TACHES_SLEEP", "TACHES_LOOP", "TACHES_POLL", "TACHES_QUEUES"]
        click.echo(json.dumps({name: current_app.config[name] for name in names}))

    return app
"""


def test_a_dotenv_file_reaches_the_app_through_the_flask_command(tmp_path: Path) -> None:
    (tmp_path / "project.py").write_text(PROJECT)
    (tmp_path / ".flaskenv").write_text("FLASK_APP=project:create_app\n")
    (tmp_path / ".env").write_text(
        "TACHES_MAX=7\nTACHES_SLEEP=0.25\nTACHES_LOOP=2\nTACHES_POLL=9\nTACHES_QUEUES=a,b\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("TACHES_")}
    env["TACHES_LOOP"] = "4"  # the real environment beats .env (python-dotenv's rule)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    result = subprocess.run(
        [sys.executable, "-m", "flask", "settings"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "TACHES_MAX": 7,
        "TACHES_SLEEP": 0.25,
        "TACHES_LOOP": 4,
        "TACHES_POLL": 1.0,
        "TACHES_QUEUES": ["a", "b"],
    }
