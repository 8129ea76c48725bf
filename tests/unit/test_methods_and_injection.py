"""From method strings to callables, and from parameter names to arguments."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from flask_taches import Status
from flask_taches.exceptions import MethodNotFound, MethodRefused, MissingArgument
from flask_taches.injection import Injector, Service, bind
from flask_taches.methods import MethodPath, check_allowed, locate, method_for, parse
from flask_taches.models import taches_table
from flask_taches.runner import run_claimed, run_one
from tests import tasks
from tests.app import taches


def test_parse_colon_and_dotted_forms() -> None:
    assert parse("tests.tasks:add") == MethodPath("tests.tasks", ("add",))
    assert parse("tests.tasks:Tools.double") == MethodPath("tests.tasks", ("Tools", "double"))
    assert parse(" tests.tasks.add ") == MethodPath("tests.tasks", ("add",))


@pytest.mark.parametrize("method", ["", "   ", "add", "tests.tasks:", "tests..tasks:add", "a-b:c"])
def test_parse_refuses_malformed_strings(method: str) -> None:
    with pytest.raises(MethodNotFound):
        parse(method)


def test_allowlist_matches_packages_not_prefixes() -> None:
    assert check_allowed("tests.tasks:add", ["tests"]).module == "tests.tasks"
    with pytest.raises(MethodRefused, match="outside TACHES_ALLOWED_MODULES"):
        check_allowed("testsuite.tasks:add", ["tests"])
    with pytest.raises(MethodRefused):
        check_allowed("os:getcwd", ["tests"])


@pytest.mark.parametrize(
    ("method", "owner", "needs_instance"),
    [
        ("tests.tasks:add", None, False),
        ("tests.tasks.add", None, False),
        ("tests.tasks:Tools.double", tasks.Tools, False),
        ("tests.tasks.Tools.triple", tasks.Tools, False),
        ("tests.tasks:Greeter.greet", tasks.Greeter, True),
    ],
)
def test_locate_every_form(method: str, owner: type | None, needs_instance: bool) -> None:
    target = locate(method)
    assert target.owner is owner
    assert target.needs_instance is needs_instance


@pytest.mark.parametrize(
    "method",
    ["tests.nowhere:add", "tests.tasks:nothing", "tests.tasks:SECRET", "tests.nowhere.add"],
)
def test_locate_unknown_or_not_callable(method: str) -> None:
    with pytest.raises(MethodNotFound):
        locate(method)


def test_an_import_error_inside_the_task_module_is_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_task_module.py").write_text("import module_that_does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="module_that_does_not_exist"):
        locate("broken_task_module:anything")


def _injector(**parametres: object) -> Injector:
    return Injector({"tache": "T", "app": "A"}, {}, parametres, {"token": "hidden"})


def test_injection_order_builtins_services_parametres_caches_defaults() -> None:
    built: list[str] = []

    def factory(app: str) -> str:
        built.append(app)
        return f"service({app})"

    services = {"helper": Service.wrap(factory)}
    injector = Injector(
        {"tache": "T", "app": "A"},
        services,
        {"helper": "param", "tache": "param", "a": 1},
        {"a": 2, "b": 3},
    )

    def func(tache: str, helper: str, a: int, b: int, c: int = 4) -> tuple[object, ...]:
        return tache, helper, a, b, c

    assert injector.call(func) == ("T", "service(A)", 1, 3, 4)
    injector.call(func)
    assert built == ["A"], "a factory is built once per injector (one task run)"


def test_service_wrap_tells_objects_from_factories() -> None:
    assert Service.wrap(tasks.Clock).is_factory
    assert Service.wrap(tasks.add).is_factory
    assert Service.wrap(dict.fromkeys).is_factory, "a bound (class) method builds too"
    assert Service.wrap(len).is_factory
    assert not Service.wrap(tasks.Clock, factory=False).is_factory
    assert not Service.wrap("a plain object").is_factory


def test_bind_builds_the_instance_by_injection() -> None:
    injector = Injector({"app": _FakeApp()}, {}, {"name": "Ada", "tache": _Recorded()})
    call = bind(locate("tests.tasks:Greeter.greet"), injector)
    assert call() == "hello Ada from fake"


def test_bind_static_and_class_methods() -> None:
    injector = _injector(n=5)
    assert bind(locate("tests.tasks:Tools.double"), injector)() == 10
    assert bind(locate("tests.tasks:Tools.triple"), injector)() == 15


def test_bind_names_the_missing_parameter_before_calling() -> None:
    with pytest.raises(MissingArgument, match="'missing_thing'"):
        bind(locate("tests.tasks:needs_missing"), _injector())


def test_bind_names_a_missing_constructor_parameter() -> None:
    with pytest.raises(MissingArgument, match="'app'"):
        bind(locate("tests.tasks:Greeter.greet"), Injector({}, {}, {"name": "x"}))


class _FakeApp:
    name = "fake"


class _Recorded:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)


@pytest.mark.parametrize(
    "method",
    [
        "tests.tasks:os.system",  # a module the task module imported
        "tests.tasks.os.getcwd",  # the same, fully dotted
        "tests.tasks:time.sleep",
        "tests.tasks:select",  # a function it imported from elsewhere
        "tests.tasks:Path",  # a class it imported
        "tests.tasks:Path.cwd",
        "tests.tasks:Tache",  # flask_taches is not an allowed package either
        "tests.tasks:Tools.__init__",  # dunder names
        "tests.tasks:add.__call__",
        "tests.tasks:Tools.__class__.mro",
        "tests.tasks:_private",
    ],
)
def test_the_allowlist_confines_the_walk_to_the_callable(method: str) -> None:
    with pytest.raises(MethodRefused):
        locate(method, ["tests"])


@pytest.mark.parametrize(
    "method",
    [
        "tests.tasks:add",
        "tests.tasks.add",
        "tests.tasks:Tools.double",  # static
        "tests.tasks.Tools.triple",  # class method
        "tests.tasks:Greeter.greet",  # instance method
        "tests.tasks:cached_double",  # decorated with functools.wraps semantics
    ],
)
def test_the_allowlist_keeps_every_form_of_method(method: str) -> None:
    assert callable(locate(method, ["tests"]).attr)
    assert callable(locate(method, ["tests.tasks"]).attr)


def test_the_allowlist_refuses_the_module_itself_first() -> None:
    with pytest.raises(MethodRefused, match="outside TACHES_ALLOWED_MODULES"):
        locate("os:getcwd", ["tests"])


# -- the code that would run, not the name it carries -----------------------------------------

FOREIGN_CODE = [
    "tests.evil_tasks:Evil",  # Popen.__init__ would run
    "tests.evil_tasks.Evil",
    "tests.evil_tasks:EvilService.run",  # the instance is built by Popen.__init__
    "tests.evil_tasks:BorrowedInit.run",  # __init__ = subprocess.Popen.__init__
    "tests.evil_tasks:CDict",  # a constructor written in C
    "tests.evil_tasks:Colour",  # the metaclass's __call__, from enum
    "tests.evil_tasks:foreign_call",  # __call__ = os.system
    "tests.evil_tasks:system_partial",  # functools.partial(os.system)
    "tests.evil_tasks:managed",  # a contextlib wrapper that copied __module__
]


@pytest.mark.parametrize("method", FOREIGN_CODE)
def test_a_callable_whose_code_is_foreign_is_refused(method: str) -> None:
    with pytest.raises(MethodRefused) as refused:
        locate(method, ["tests"])
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "method",
    ["tests._private.mod:f", "tests.__init__:add", "tests.__init__.add", "tests.tasks._x:f"],
)
def test_a_private_module_or_init_is_refused_by_name(method: str) -> None:
    with pytest.raises(MethodRefused, match="private module"):
        check_allowed(method, ["tests"])
    with pytest.raises(MethodRefused, match="private module"):
        locate(method, ["tests"])


def test_an_explicitly_allowed_private_package_is_a_prefix_like_any_other() -> None:
    assert check_allowed("tests._x.mod:f", ["tests._x"]).module == "tests._x.mod"


@pytest.mark.parametrize(
    "method",
    [
        "tests.evil_tasks:own_call",  # __call__ defined here
        "tests.evil_tasks:Report.build",  # a dataclass's generated __init__
        "tests.evil_tasks:Report",
        "tests.tasks:Greeter",
        "tests.tasks:Clock.now",
        "tests.tasks:uses_services",
        "sample_app.services:DemoService.demo",
        "sample_app.services:DemoService.fail",
        "sample_app.services:ReportService.build",
        "sample_app.services:Catalogue.from_app",
    ],
)
def test_own_code_is_accepted_in_every_form(method: str) -> None:
    package = method.split(".")[0]
    assert callable(locate(method, [package]).attr)


def test_a_wrapper_is_unwrapped_only_when_it_is_allowed_too() -> None:
    # cached_double is wrapped by functools' cache, which only calls it back.
    assert callable(locate("tests.tasks:cached_double", ["tests"]).attr)
    # contextlib's wrapper is foreign code, whatever __module__ it copied.
    with pytest.raises(MethodRefused, match="contextlib"):
        locate("tests.evil_tasks:managed", ["tests"])


# -- the same check at add() and at run time ---------------------------------------------------


def _count() -> int:
    with taches.store().read() as conn:
        return int(conn.execute(select(func.count()).select_from(taches_table)).scalar_one())


def _forge(tache_id: int, **values: Any) -> None:
    """Edit a row behind add()'s back, as SQL access to the table would."""
    with taches.store().write() as conn:
        conn.execute(update(taches_table).where(taches_table.c.id == tache_id).values(**values))


def _stored(tache_id: int) -> dict[str, Any]:
    with taches.store().read() as conn:
        found = conn.execute(select(taches_table).where(taches_table.c.id == tache_id))
        return dict(found.mappings().one())


def _never_created(marker: Path, wait: float = 0.3) -> bool:
    """A command started by Popen runs beside us: give it time to show up."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if marker.exists():
            return False
        time.sleep(0.02)
    return not marker.exists()


def test_add_refuses_a_class_built_by_a_foreign_constructor(db_ctx: Flask, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(MethodRefused, match="subprocess") as refused:
        taches.add("tests.evil_tasks:Evil", parametres={"args": ["touch", str(marker)]})
    assert "\n" not in str(refused.value)
    with pytest.raises(MethodRefused, match="private module"):
        taches.add("tests.__init__:add")
    assert _count() == 0
    assert _never_created(marker)


def test_a_forged_foreign_constructor_is_refused_at_run_time(db_ctx: Flask, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tache_id = taches.add("tests.tasks:add", parametres={"args": ["touch", str(marker)]})
    _forge(tache_id, method="tests.evil_tasks:Evil")
    attempt = taches.store().claim_one(tache_id)
    assert run_claimed(tache_id, attempt) is Status.FAILED
    stored = _stored(tache_id)
    assert "subprocess" in stored["logs"][-1]["message"]
    assert _never_created(marker), "nothing of the task ran"


def test_a_forged_private_module_is_refused_before_the_claim(db_ctx: Flask) -> None:
    tache_id = taches.add("tests.tasks:add", parametres={"a": 1})
    _forge(tache_id, method="tests.__init__:add")
    before = _stored(tache_id)
    with pytest.raises(MethodRefused, match="private module"):
        run_one(tache_id)
    assert _stored(tache_id) == before
    attempt = taches.store().claim_one(tache_id)
    assert run_claimed(tache_id, attempt) is Status.FAILED, "a manager's claim: refused too"


def test_the_sample_tasks_are_still_accepted_by_add(db_ctx: Flask) -> None:
    given = {"tests.tasks:add": {}, "tests.tasks:Greeter.greet": {"name": "x"}}
    given["tests.tasks:cached_double"] = {"n": 2}
    for method, parametres in given.items():
        assert taches.add(method, parametres=parametres) > 0


def test_method_for_names_functions_and_methods_as_locate_finds_them() -> None:
    named = {
        tasks.add: "tests.tasks:add",
        tasks.Tools.double: "tests.tasks:Tools.double",
        tasks.Tools.triple: "tests.tasks:Tools.triple",  # a bound classmethod
        tasks.Greeter.greet: "tests.tasks:Greeter.greet",
        tasks.Greeter(Flask("x")).greet: "tests.tasks:Greeter.greet",  # a bound method
    }
    for function, method in named.items():
        assert method_for(function) == method
        assert locate(method, ["tests"]).path.text == method


def test_method_for_refuses_what_no_runner_could_import() -> None:
    def local() -> None:
        pass

    with pytest.raises(MethodNotFound, match="no importable name"):
        method_for(local)
    with pytest.raises(MethodNotFound, match="no importable name"):
        method_for(lambda: None)
    with pytest.raises(MethodNotFound, match="not a function"):
        method_for(42)
