"""From parameter names to arguments: how a task's callable gets what it asks for.

Injection by name, in the contract's order: ``tache``, ``app``, ``db``,
``logger``, the registered services, the keys of ``parametres``, those of
``parametres_caches``, then the parameter's default.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import MissingArgument
from .methods import Target, describe

_MISSING = object()
#: Parameters the runner always provides, whatever the task.
BUILTIN_NAMES = frozenset({"tache", "app", "db", "logger"})


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
                    f"nothing provides parameter {param.name!r} of {describe(func)}"
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


def required_names(target: Target) -> tuple[str, ...]:
    """The parameters without a default that running ``target`` will ask for.

    Those of the callable, and for an instance method those of the class's
    ``__init__`` too (the instance is built by injection first); ``self`` is
    not one. Nothing is called.
    """
    if target.needs_instance:
        assert target.owner is not None
        found = _required(target.owner)
        method = _required(target.attr)
        return (*found, *method[1:])  # the method's first parameter is the instance
    return _required(target.attr)


def _required(func: Callable[..., Any]) -> tuple[str, ...]:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the runner will say
        return ()
    return tuple(
        param.name
        for param in parameters
        if param.default is param.empty
        and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    )
