"""docs/spec-fields.md lists every field the spec models accept, and its refusals match the code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import druidflow.specs as specs
from druidflow.specs.base import DruidModel
from druidflow.specs.unsupported import DEFAULT_ONLY

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec-fields.md"


def sections() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        head = re.match(r"#### `(\w+)`", line)
        if head:
            current = out.setdefault(head.group(1), {})
            continue
        row = re.match(r"\| `([^`]+)` \| ([^|]+) \|", line)
        if row and current is not None:
            current[row.group(1)] = row.group(2).strip()
    return out


def models():
    modules = [importlib.import_module(f"druidflow.specs.{m.name}") for m in pkgutil.iter_modules(specs.__path__)]
    modules.append(importlib.import_module("druidflow.compaction.config"))
    for module in modules:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DruidModel) and cls.__module__ == module.__name__ and cls.model_fields:
                yield name, cls


def test_every_accepted_field_is_listed_with_its_fate():
    documented = sections()
    missing = [
        f"{name}.{info.alias or field}"
        for name, cls in models()
        for field, info in cls.model_fields.items()
        if (info.alias or field) not in documented.get(name, {})
    ]
    assert missing == [], f"add these fields to docs/spec-fields.md: {missing}"
    assert all(status in {"honoured", "partly", "refused", "refused unless default", "owned by `protocol`"}
               for rows in documented.values() for status in rows.values())


def test_the_refusals_listed_are_the_ones_the_code_makes():
    documented = sections()
    classes = dict(models())
    for name, rules in DEFAULT_ONLY.items():
        cls = classes[name]
        for field in rules:
            alias = cls.model_fields[field].alias or field
            assert documented[name][alias] == "refused unless default", (name, alias)
