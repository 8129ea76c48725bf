"""A required parameter that nothing will provide is refused by ``add()``, in one line."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_taches import InvalidTache, Tache
from tests.app import taches


def refusal(method: str, **options: object) -> str:
    with pytest.raises(InvalidTache) as refused:
        taches.add(method, **options)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_parameter_nothing_provides_is_refused_naming_it(app_ctx: Flask) -> None:
    message = refusal("tests.tasks:needs_missing", parametres={"missing_thingg": 1})
    assert message == (
        "tests.tasks:needs_missing: nothing provides its parameter 'missing_thing' (not tache, "
        "app, db or logger, no registered service, not in parametres, no default)"
    )
    assert taches.latest_ids(["never"]) == {}  # nothing was added


def test_the_class_of_an_instance_method_is_checked_too(app_ctx: Flask) -> None:
    # Greeter.__init__(app, greeting="hello") is fine; greet(name, tache) needs name.
    assert "'name'" in refusal("tests.tasks:Greeter.greet")
    assert taches.add("tests.tasks:Greeter.greet", parametres={"name": "ada"})


def test_what_provides_a_parameter_is_accepted(app_ctx: Flask) -> None:
    taches.add("tests.tasks:needs_missing", parametres={"missing_thing": "x"})
    taches.add("tests.tasks:needs_missing", parametres_caches={"missing_thing": "x"})
    taches.add("tests.tasks:Greeter.greet", parametres={"name": "x"})  # greeting has a default
    taches.add("tests.tasks:uses_builtins")  # tache, app, db, logger
    taches.register_service("missing_thing", "a service")
    try:
        taches.add("tests.tasks:needs_missing")
    finally:
        del taches.hooks.services["missing_thing"]


def test_previous_is_provided_after_others_only(app_ctx: Flask) -> None:
    total = "tests.decorated_tasks:total"
    assert "'previous'" in refusal(total)
    assert len(taches.chain("tests.tasks:returns_nothing", total)) == 2
    assert len(taches.group("tests.tasks:returns_nothing", then=Tache(method=total))) == 2
    with pytest.raises(InvalidTache, match="'previous'"):
        taches.chain(total, "tests.tasks:returns_nothing")  # the first one has no previous
    with pytest.raises(InvalidTache, match="'n'"):
        taches.add_many(["tests.tasks:returns_nothing", "tests.decorated_tasks:double"])
