"""Method strings: parsed, checked against the allowlist, resolved to a callable.

Accepted forms:

* ``"package.module:function"``, ``"package.module:Class.method"`` (static,
  class or instance method: an instance is built by injecting ``__init__``);
* ``"package.module.function"`` (fully dotted; the longest importable module
  prefix wins).

An ``ImportError`` raised *inside* the task's own module is not mistaken for
"module not found": it propagates, chained, with its original traceback.

With an allowlist (``TACHES_ALLOWED_MODULES``), :func:`locate` confines the
walk from the module to the callable: no ``_private`` module (``__init__``
included) in the path, no module object, no ``_private`` or ``__dunder__``
name on the way, and the callable (and every class walked through) must be
defined inside an allowed package. Otherwise ``"app.jobs:os.system"`` would
reach whatever ``app.jobs`` imported.

A name proves little (a subclass of ``subprocess.Popen`` says it is from
``app.jobs``; ``functools.wraps`` copies ``__module__``), so the check ends on
the code that would run (:func:`_confine_code`): the Python function called,
as its globals say where it was written; for a class, the metaclass's
``__call__``, ``__new__`` and ``__init__`` that building it runs (``object``'s
and ``type``'s are fine). Code not written in Python is refused.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import FunctionType, MethodType, ModuleType
from typing import Any

from .exceptions import MethodNotFound, MethodRefused

#: Methods a :class:`MethodCheck` remembers before it starts over (entries).
METHOD_CACHE_SIZE = 4096


@dataclass(frozen=True)
class MethodPath:
    """A parsed method string: the module to import and the attribute chain in it."""

    module: str
    attrs: tuple[str, ...]

    @property
    def text(self) -> str:
        return f"{self.module}:{'.'.join(self.attrs)}"


def parse(method: str) -> MethodPath:
    """Split a method string; syntax errors only (nothing is imported)."""
    if not isinstance(method, str) or not method.strip():
        raise MethodNotFound(f"method must be a non-empty string, not {method!r}")
    method = method.strip()
    if ":" in method:
        module, _, attr = method.partition(":")
        attrs = tuple(attr.split("."))
    else:
        module, _, last = method.rpartition(".")
        attrs = (last,)
    if not module or not all(part.isidentifier() for part in attrs):
        raise MethodNotFound(f"{method!r} is not 'package.module:attr' nor a dotted path")
    if not all(part.isidentifier() for part in module.split(".")):
        raise MethodNotFound(f"{method!r}: {module!r} is not a module path")
    return MethodPath(module, attrs)


def is_allowed(path: MethodPath, allowed: Iterable[str]) -> bool:
    """True when the method's module is one of ``allowed`` or inside one of them."""
    return any(path.module == prefix or path.module.startswith(prefix + ".") for prefix in allowed)


def _private_part(path: MethodPath, allowed: Iterable[str]) -> str | None:
    """The first ``_private`` module part below the allowed package, if any.

    ``__init__`` counts: ``pkg.__init__`` would import the package's file a
    second time, as another module. Parts of an allowed prefix itself are the
    app's explicit choice.
    """
    parts = path.module.split(".")
    found: str | None = None
    for prefix in allowed:
        if not is_allowed(path, [prefix]):
            continue
        below = [part for part in parts[len(prefix.split(".")) :] if part.startswith("_")]
        if not below:
            return None
        found = found or below[0]
    return found


def check_allowed(method: str, allowed: Iterable[str]) -> MethodPath:
    """Refuse by name (nothing imported): outside the allowlist, or a private module."""
    path = parse(method)
    allowed = list(allowed)
    if not is_allowed(path, allowed):
        raise MethodRefused(
            f"{method!r} is outside TACHES_ALLOWED_MODULES ({', '.join(allowed) or 'none'})"
        )
    private = _private_part(path, allowed)
    if private is not None:
        raise MethodRefused(f"{method!r}: private module {private!r} in a method path")
    return path


def _import_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only "this very module (or a parent) does not exist" means a bad path;
        # a missing import *inside* the module is the task's own bug.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise MethodNotFound(f"no module named {name!r}") from exc
        raise


def _split_dotted(path: MethodPath) -> MethodPath:
    """For ``a.b.C.method`` without a colon, find where the module ends."""
    parts = path.module.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            _import_module(module)
        except MethodNotFound:
            continue
        return MethodPath(module, (*parts[cut:], *path.attrs))
    raise MethodNotFound(f"no module found in {path.module!r}")


@dataclass(frozen=True)
class Target:
    """What a method string names: the owner class (if any) and the attribute."""

    path: MethodPath
    owner: type | None
    attr: Any  # the raw attribute (function, staticmethod, classmethod...)
    name: str

    @property
    def needs_instance(self) -> bool:
        """An instance method: the class must be built before calling it."""
        if self.owner is None:
            return False
        raw = inspect.getattr_static(self.owner, self.name)
        return not isinstance(raw, (staticmethod, classmethod))


def locate(method: str, allowed: Iterable[str] | None = None) -> Target:
    """Import the module and walk to the attribute; raises :class:`MethodNotFound`.

    With ``allowed``, the method must be inside those packages, and so must
    be what the walk reaches (:class:`MethodRefused` otherwise): the one check
    ``add()`` and the runner both go through.
    """
    if allowed is not None:
        allowed = list(allowed)
        check_allowed(method, allowed)
    path = parse(method)
    try:
        module: Any = _import_module(path.module)
    except MethodNotFound:
        if ":" in method:
            raise
        path = _split_dotted(path)
        module = _import_module(path.module)
    holder: Any = module
    owner: type | None = None
    for name in path.attrs:
        if allowed is not None and name.startswith("_"):
            raise MethodRefused(f"{path.text}: private name {name!r} in a method path")
        try:
            value = getattr(holder, name)
        except AttributeError as exc:
            raise MethodNotFound(f"{path.text}: {name!r} not found in {holder!r}") from exc
        owner = holder if inspect.isclass(holder) else None
        holder = value
        if allowed is not None:
            _confine(path, holder, allowed)
    if not callable(holder):
        raise MethodNotFound(f"{path.text} is not callable")
    target = Target(path=path, owner=owner, attr=holder, name=path.attrs[-1])
    if allowed is not None:
        _confine_code(target, allowed)
    return target


def _confine(path: MethodPath, value: Any, allowed: list[str]) -> None:
    """Refuse a step of the walk that leaves the allowed packages.

    A module object is refused outright (name the module itself instead); a
    class or a callable must have been defined inside an allowed package, as
    its ``__module__`` says (``functools.wraps`` keeps the wrapped function's).
    """
    if isinstance(value, ModuleType):
        raise MethodRefused(f"{path.text} walks through module {value.__name__!r}")
    if not (inspect.isclass(value) or callable(value)):
        return  # not callable: MethodNotFound if it is the last step
    home = getattr(value, "__module__", None)
    if not isinstance(home, str) or not is_allowed(MethodPath(home, ()), allowed):
        raise MethodRefused(
            f"{path.text} resolves to {describe(value)} from {home!r}, "
            f"outside TACHES_ALLOWED_MODULES ({', '.join(allowed) or 'none'})"
        )


#: functools' cache wrapper only calls the function it wraps: it is looked through.
_CACHE_WRAPPER: Any = type(functools.cache(lambda: None))


def _confine_code(target: Target, allowed: list[str]) -> None:
    """Refuse a target whose code, when run, is not the allowed packages' own."""
    value = target.attr
    if inspect.isclass(value):
        _confine_construction(target.path, value, allowed)
        return
    if target.needs_instance:
        assert target.owner is not None
        _confine_construction(target.path, target.owner, allowed)
    label, func = _called_function(value)
    _confine_function(target.path, label, func, allowed)


def _called_function(value: Any) -> tuple[str, Any]:
    """What runs when ``value`` is called: its name, and the function (or what stands instead)."""
    while type(value) is _CACHE_WRAPPER and _CACHE_WRAPPER is not FunctionType:
        value = value.__wrapped__
    if isinstance(value, MethodType):
        return describe(value), value.__func__
    if isinstance(value, FunctionType) or inspect.isroutine(value):
        return describe(value), value  # a builtin or C function: refused below
    definer, call = _defined(type(value), "__call__")  # a callable instance
    return f"{definer.__qualname__}.__call__", call


def _confine_construction(path: MethodPath, cls: type, allowed: list[str]) -> None:
    """What building ``cls`` runs: its metaclass's ``__call__``, ``__new__``, ``__init__``."""
    steps = ((type(cls), "__call__", type), (cls, "__new__", object), (cls, "__init__", object))
    for klass, name, harmless in steps:
        definer, raw = _defined(klass, name)
        if definer is not harmless:
            label = f"{definer.__qualname__}.{name}"
            _confine_function(path, label, raw, allowed)


def _defined(cls: type, name: str) -> tuple[type, Any]:
    """The class of ``cls``'s MRO that defines ``name``, and the raw function there."""
    for klass in cls.__mro__:
        if name in vars(klass):
            raw = vars(klass)[name]
            if isinstance(raw, (staticmethod, classmethod)):
                raw = raw.__func__
            return klass, raw
    raise MethodNotFound(f"{cls.__qualname__} has no {name}")  # not reached: object has them


def _confine_function(path: MethodPath, label: str, func: Any, allowed: list[str]) -> None:
    """``func`` must be a Python function whose code was written in an allowed package."""
    if not isinstance(func, FunctionType):
        raise MethodRefused(f"{path.text}: {label} is not Python code of TACHES_ALLOWED_MODULES")
    # Its globals are those of the module its code was written in, whatever
    # __module__ says (functools.wraps copies the wrapped function's).
    home = func.__globals__.get("__name__")
    if not isinstance(home, str) or not is_allowed(MethodPath(home, ()), allowed):
        raise MethodRefused(
            f"{path.text}: {label} runs code of {home!r}, "
            f"outside TACHES_ALLOWED_MODULES ({', '.join(allowed) or 'none'})"
        )


def method_for(function: Any) -> str:
    """The method string naming ``function``: ``"module:function"`` or ``"module:Class.method"``.

    A module-level function, or a function defined in a class body (static,
    class or instance method alike: a bound method or a ``staticmethod`` /
    ``classmethod`` object names its function). Nothing is imported: it
    works inside a class body, before the class exists. A function defined
    inside another function (``<locals>``) or a lambda has no name a runner
    could find, and is refused with :class:`MethodNotFound`.
    """
    func = function
    if isinstance(func, (staticmethod, classmethod, MethodType)):
        func = func.__func__
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or not callable(func):
        raise MethodNotFound(f"{function!r} is not a function or a method")
    if "<" in qualname:  # <locals>, <lambda>
        raise MethodNotFound(
            f"{module}.{qualname} has no importable name: define it at module or class level"
        )
    if module == "__main__":
        raise MethodNotFound(f"{qualname} is in __main__: a runner cannot import it by name")
    return f"{module}:{qualname}"


def describe(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


class MethodCheck:
    """Methods one app already accepted, by allowlist.

    Checking a method imports its module and walks to the attribute; a bulk
    ``add_many()`` of one method paid that per row. The allowlist is part of
    the key, so a changed ``TACHES_ALLOWED_MODULES`` is checked afresh. Only
    successes are kept: a refused method is refused again, with its message.
    """

    def __init__(self, limit: int = METHOD_CACHE_SIZE) -> None:
        self._limit = limit
        self._accepted: set[tuple[str, tuple[str, ...]]] = set()

    def check(self, method: str, allowed: Sequence[str]) -> None:
        """Raise :class:`MethodRefused` or :class:`MethodNotFound`, or return."""
        if not isinstance(method, str):
            check_allowed(method, allowed)  # raises the one-line "not a string" error
        key = (method, tuple(allowed))
        if key in self._accepted:
            return
        check_allowed(method, key[1])  # refused by name: nothing imported
        locate(method, key[1])  # the walk confined to the allowlist too
        if len(self._accepted) >= self._limit:
            self._accepted.clear()  # a dynamic method per call must not grow memory
        self._accepted.add(key)
