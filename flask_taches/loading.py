"""From a method string to a callable, and from parameter names to arguments.

Accepted forms:

* ``"package.module:function"``, ``"package.module:Class.method"`` (static,
  class or instance method: an instance is built by injecting ``__init__``);
* ``"package.module.function"`` (fully dotted; the longest importable module
  prefix wins).

An ``ImportError`` raised *inside* the task's own module is not mistaken for
"module not found": it propagates, chained, with its original traceback.

With an allowlist (``TACHES_ALLOWED_MODULES``), :func:`locate` confines the
walk from the module to the callable: no module object, no ``_private`` or
``__dunder__`` name on the way, and the callable (and every class walked
through) must be defined inside an allowed package. Otherwise
``"app.jobs:os.system"`` would reach whatever ``app.jobs`` imported.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .exceptions import MethodNotFound, MethodRefused, MissingArgument

_MISSING = object()


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


def check_allowed(method: str, allowed: Iterable[str]) -> MethodPath:
    path = parse(method)
    allowed = list(allowed)
    if not is_allowed(path, allowed):
        raise MethodRefused(
            f"{method!r} is outside TACHES_ALLOWED_MODULES ({', '.join(allowed) or 'none'})"
        )
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
    return Target(path=path, owner=owner, attr=holder, name=path.attrs[-1])


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
            f"{path.text} resolves to {_describe(value)} from {home!r}, "
            f"outside TACHES_ALLOWED_MODULES ({', '.join(allowed) or 'none'})"
        )


class Injector:
    """Finds a value for each parameter name, in the contract's order.

    ``tache``/``app``/``db``/``logger`` first, then the registered services
    (a factory is built on first use, itself by injection), then the keys of
    ``parametres``, then those of ``parametres_caches``; a parameter's default
    comes last.
    """

    def __init__(
        self,
        builtins: Mapping[str, Any],
        services: Mapping[str, Service],
        parametres: Mapping[str, Any],
        parametres_caches: Mapping[str, Any] | None = None,
    ) -> None:
        self.builtins = builtins
        self.services = services
        self.parametres = parametres
        self.parametres_caches = parametres_caches or {}
        self._built: dict[str, Any] = {}

    def lookup(self, name: str) -> Any:
        if name in self.builtins:
            return self.builtins[name]
        if name in self.services:
            if name not in self._built:
                self._built[name] = self.services[name].build(self)
            return self._built[name]
        for source in (self.parametres, self.parametres_caches):
            if name in source:
                return source[name]
        return _MISSING

    def arguments(self, func: Callable[..., Any]) -> dict[str, Any]:
        """Keyword arguments for ``func``; raises :class:`MissingArgument` naming the gap."""
        kwargs: dict[str, Any] = {}
        for param in inspect.signature(func).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            value = self.lookup(param.name)
            if value is not _MISSING:
                kwargs[param.name] = value
            elif param.default is param.empty:
                raise MissingArgument(
                    f"nothing provides parameter {param.name!r} of {_describe(func)}"
                )
        return kwargs

    def call(self, func: Callable[..., Any]) -> Any:
        return func(**self.arguments(func))


@dataclass(frozen=True)
class Service:
    """A registered service: a ready object, or a factory built once per task run."""

    value: Any
    is_factory: bool

    @classmethod
    def wrap(cls, obj_or_factory: Any, factory: bool | None = None) -> Service:
        """Classes, functions and methods are factories unless ``factory=False``.

        A bound method counts (``Storage.from_app`` is the usual way to build a
        service from the app); any other object is injected as it is.
        """
        if factory is None:
            factory = inspect.isclass(obj_or_factory) or inspect.isroutine(obj_or_factory)
        return cls(obj_or_factory, factory)

    def build(self, injector: Injector) -> Any:
        return injector.call(self.value) if self.is_factory else self.value


def _describe(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def bind(target: Target, injector: Injector) -> Callable[[], Any]:
    """A no-argument callable that runs the target with injected arguments.

    The instance (for an instance method) and the arguments are found now, so a
    :class:`MissingArgument` is raised here, before any of the task's code runs.
    """
    if target.needs_instance:
        assert target.owner is not None
        instance = injector.call(target.owner)
        bound = getattr(instance, target.name)
    else:
        bound = target.attr
    return functools.partial(bound, **injector.arguments(bound))
