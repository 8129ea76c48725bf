"""Identity, admin and the one authorization rule (auth.can) every route uses."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from flask_taches import ConfigurationError, Tache, TachesExtension, auth

USERS_BY_TOKEN = {"t-alice": "alice", "t-bob": "bob"}


def lookup_user() -> str | None:
    """An application's own loader: who is behind the request's token?"""
    from flask import request

    return USERS_BY_TOKEN.get(request.headers.get("Authorization", ""))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Flask, TachesExtension]]:
    """An app with its own extension object, so hooks set here stay here."""
    app = Flask("tests", instance_path=str(tmp_path))
    app.config.update(SECRET_KEY="k", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'a.db'}")
    db = SQLAlchemy(app)
    yield app, TachesExtension(app, db)
    with app.app_context():
        db.engine.dispose()


def owned(owner: str | None) -> Tache:
    return Tache(id=1, method="tests.tasks:add", owner=owner)


# -- identity ---------------------------------------------------------------------------------


def test_no_identity_outside_a_request(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    ext.identity_loader(lambda: "alice")
    with app.app_context():
        assert auth.current_owner() is None
        assert auth.is_admin() is False


def test_identity_loader_decorator(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh

    @ext.identity_loader
    def who() -> Any:
        return lookup_user()

    with app.test_request_context(headers={"Authorization": "t-alice"}):
        assert auth.current_owner() == "alice"
    with app.test_request_context(headers={"Authorization": "nope"}):
        assert auth.current_owner() is None


def test_identity_setting_as_callable_and_dotted_path(fresh: tuple[Flask, TachesExtension]) -> None:
    app, _ = fresh
    app.config["TACHES_IDENTITY"] = lookup_user
    with app.test_request_context(headers={"Authorization": "t-bob"}):
        assert auth.current_owner() == "bob"
    app.config["TACHES_IDENTITY"] = "tests.unit.test_auth:lookup_user"
    with app.test_request_context(headers={"Authorization": "t-alice"}):
        assert auth.current_owner() == "alice"


def test_the_decorator_wins_over_the_setting(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    app.config["TACHES_IDENTITY"] = lambda: "from-setting"
    ext.identity_loader(lambda: "from-decorator")
    with app.test_request_context():
        assert auth.current_owner() == "from-decorator"


@pytest.mark.parametrize(("identity", "owner"), [(42, "42"), ("", None), (None, None)])
def test_identity_is_a_string_or_none(
    fresh: tuple[Flask, TachesExtension], identity: Any, owner: str | None
) -> None:
    app, ext = fresh
    ext.identity_loader(lambda: identity)
    with app.test_request_context():
        assert auth.current_owner() == owner


def test_identity_is_asked_once_per_request(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    calls: list[int] = []

    @ext.identity_loader
    def who() -> str:
        calls.append(1)
        return "alice"

    with app.app_context():  # one app context, two requests: no answer carried over
        with app.test_request_context():
            for _ in range(5):
                auth.can(owned("alice"))
        with app.test_request_context():
            auth.current_owner()
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tests.unit.test_auth:no_such_function", "does not name a callable"),
        ("no_such_module_xyz:f", "does not name a callable"),
        (42, "must be a callable or a dotted path"),
    ],
)
def test_a_bad_identity_setting_is_a_clear_error(
    fresh: tuple[Flask, TachesExtension], value: Any, message: str
) -> None:
    app, _ = fresh
    app.config["TACHES_IDENTITY"] = value
    with app.test_request_context(), pytest.raises(ConfigurationError, match=message):
        auth.current_owner()


# -- Flask-Login (not installed: a stand-in module plays its part) ------------------------------


class FakeUser:
    def __init__(self, user_id: str | None) -> None:
        self.user_id = user_id

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    def get_id(self) -> str | None:
        return self.user_id


@pytest.fixture
def fake_flask_login(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("flask_login")
    module.current_user = FakeUser("carol")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "flask_login", module)
    return module


def test_flask_login_current_user_when_the_app_uses_it(
    fresh: tuple[Flask, TachesExtension], fake_flask_login: types.ModuleType
) -> None:
    app, _ = fresh
    with app.test_request_context():
        assert auth.current_owner() is None  # the app has no login_manager: not consulted
    app.login_manager = object()  # type: ignore[attr-defined]  # what LoginManager.init_app sets
    with app.test_request_context():
        assert auth.current_owner() == "carol"
    fake_flask_login.current_user = FakeUser(None)  # type: ignore[attr-defined]
    with app.test_request_context():
        assert auth.current_owner() is None


def test_a_login_manager_without_flask_login_installed_means_anonymous(
    fresh: tuple[Flask, TachesExtension], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = fresh
    monkeypatch.setitem(sys.modules, "flask_login", None)  # import fails
    app.login_manager = object()  # type: ignore[attr-defined]
    with app.test_request_context():
        assert auth.current_owner() is None


# -- admin, can, visible_owners -------------------------------------------------------------------


def test_admin_by_decorator_or_setting(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    with app.test_request_context():
        assert auth.is_admin() is False
    app.config["TACHES_IS_ADMIN"] = lambda: 1
    with app.test_request_context():
        assert auth.is_admin() is True
    ext.admin_loader(lambda: False)
    with app.test_request_context():
        assert auth.is_admin() is False


def test_default_rule(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    ext.identity_loader(lambda: "alice")
    with app.test_request_context():
        for action in auth.ACTIONS:
            assert auth.can(owned("alice"), action)
            # shared: seen by all, acted on by admins only (TACHES_SHARED_ACTIONS)
            assert auth.can(owned(None), action) == (action in ("view", "fichier"))
            assert not auth.can(owned("bob"), action)
    ext.admin_loader(lambda: True)
    with app.test_request_context():
        assert auth.can(owned("bob"), "delete")


def test_only_admins_act_on_shared_tasks_unless_the_setting_opens_them(
    fresh: tuple[Flask, TachesExtension],
) -> None:
    app, ext = fresh
    ext.identity_loader(lambda: "alice")
    with app.test_request_context():
        assert auth.can(owned(None), "view") and auth.can(owned(None), "fichier")
        for action in ("cancel", "restart", "delete"):
            assert not auth.can(owned(None), action)
            with pytest.raises(auth.NotAllowed, match=f"^you may not {action} task 1$"):
                auth.check(owned(None), action)
    ext.admin_loader(lambda: True)
    with app.test_request_context():
        assert all(auth.can(owned(None), a) for a in auth.ACTIONS)
    ext.admin_loader(lambda: False)
    app.config["TACHES_SHARED_ACTIONS"] = True
    with app.test_request_context():
        assert all(auth.can(owned(None), a) for a in auth.ACTIONS)
        assert not auth.can(owned("bob"), "cancel")


def test_anonymous_sees_shared_tasks_only(fresh: tuple[Flask, TachesExtension]) -> None:
    app, _ = fresh
    with app.test_request_context():
        assert auth.can(owned(None))
        assert not auth.can(owned("alice"))


def test_a_custom_rule_decides_alone(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    ext.admin_loader(lambda: True)
    asked: list[tuple[int, str]] = []

    @ext.authorize
    def rule(tache: Tache, action: str) -> bool:
        asked.append((tache.id, action))
        return action == "view"

    with app.test_request_context():
        assert auth.can(owned("x"), "view")
        assert not auth.can(owned("x"), "delete")  # even for an admin
    assert asked == [(1, "view"), (1, "delete")]


def test_custom_rule_from_the_setting(fresh: tuple[Flask, TachesExtension]) -> None:
    app, _ = fresh
    app.config["TACHES_AUTHORIZE"] = lambda tache, action: tache.owner == "team"
    with app.test_request_context():
        assert auth.can(owned("team"), "cancel")
        assert not auth.can(owned(None), "view")


def test_unknown_action_is_a_programming_error(fresh: tuple[Flask, TachesExtension]) -> None:
    app, _ = fresh
    with app.test_request_context(), pytest.raises(ValueError, match="unknown action 'edit'"):
        auth.can(owned(None), "edit")


def test_visible_owners(fresh: tuple[Flask, TachesExtension]) -> None:
    app, ext = fresh
    with app.test_request_context():
        assert auth.visible_owners() == [None]
    ext.identity_loader(lambda: "alice")
    with app.test_request_context():
        assert auth.visible_owners() == ["alice", None]
    ext.admin_loader(lambda: True)
    with app.test_request_context():
        assert auth.visible_owners() is None
    ext.admin_loader(lambda: False)
    ext.authorize(lambda tache, action: True)
    with app.test_request_context():
        assert auth.visible_owners() is None  # a custom rule: can() filters row by row
