"""One error root: every exception class hourcast defines (the package and the Prefect flows) derives from
``HourcastError``, so no domain error subclasses a builtin such as ``ValueError`` again and the command
line catches only its own errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import flows
import hourcast
from hourcast.errors import HourcastError

NOT_IMPORTED = {"hourcast.__main__"}  # runs the command line when imported


def defined_exceptions(package: ModuleType) -> list[type[BaseException]]:
    """Every exception class defined in a module of ``package`` (its nested classes too)."""
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        if info.name in NOT_IMPORTED:
            continue
        module = importlib.import_module(info.name)
        classes = [value for value in vars(module).values() if inspect.isclass(value)]
        while classes:
            cls = classes.pop()
            if cls.__module__ != module.__name__:
                continue  # imported, not defined here
            classes += [value for value in vars(cls).values() if inspect.isclass(value)]
            if issubclass(cls, BaseException):
                found.append(cls)
    return found


def test_every_exception_class_derives_from_hourcast_error() -> None:
    found = defined_exceptions(hourcast) + defined_exceptions(flows)
    names = {cls.__name__ for cls in found}
    assert names >= {"TrainingError", "ExchangeFailure", "QuarantineError", "PullFailed", "UsageError"}
    outside = [
        f"{cls.__module__}.{cls.__qualname__}({', '.join(base.__name__ for base in cls.__bases__)})"
        for cls in found
        if not issubclass(cls, HourcastError)
    ]
    assert outside == []
