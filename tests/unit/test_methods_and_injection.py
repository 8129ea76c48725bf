"""From method strings to callables, and from parameter names to arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from flask_taches.exceptions import MethodNotFound, MethodRefused, MissingArgument
from flask_taches.injection import Injector, Service, bind
from flask_taches.methods import MethodPath, check_allowed, locate, parse
from tests import tasks


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
