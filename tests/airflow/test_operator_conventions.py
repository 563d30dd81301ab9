"""Every operator Druidflow ships follows the providers' conventions: constructor arguments keyword-only, each one
documented with ``:param name:`` in the operator's docstring or a public base's (a base documents the arguments
it adds; a private base's arguments are documented by the operators built on it)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from airflow.sdk import BaseOperator

import druidflow.operators


def _operators() -> list[type]:
    found: dict[str, type] = {}
    for module in pkgutil.iter_modules(druidflow.operators.__path__):
        loaded = importlib.import_module(f"druidflow.operators.{module.name}")
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(cls, BaseOperator) and cls.__module__.startswith("druidflow.operators.") and not cls.__name__.startswith("_"):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


OPERATORS = _operators()


def test_every_operator_module_is_seen():
    modules = {op.__module__.rsplit(".", 1)[1] for op in OPERATORS}
    assert {"compact", "druid_task", "index", "kafka", "kill", "parallel", "push", "spark"} <= modules


@pytest.mark.parametrize("op", OPERATORS, ids=lambda o: o.__name__)
def test_constructor_args_are_keyword_only_and_documented(op):
    ours = [cls for cls in op.__mro__ if cls.__module__.startswith("druidflow.operators.")]
    public_docs = " ".join(cls.__doc__ or "" for cls in ours if cls is op or not cls.__name__.startswith("_"))
    documented = set(re.findall(r":param (\w+):", public_docs))
    for cls in ours:
        if "__init__" not in cls.__dict__:
            continue
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            assert param.kind is param.KEYWORD_ONLY, f"{cls.__name__}.{name} is not keyword-only"
            assert name in documented, f"{op.__name__} (or a public base) docstring lacks ':param {name}:'"
