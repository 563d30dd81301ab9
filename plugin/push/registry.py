"""Which dataSources accept pushes: their realtime specs, from a folder of JSON files and/or one JSON document.

A folder holds one realtime task per ``*.json`` file (``DRUIDFLOW_PUSH_SPECS`` or ``[druidflow] push_spec_dir``);
the document (the Airflow Variable ``druidflow_push_specs``) is a JSON list of them. A spec that does not
validate is left out and its error kept, so that the status endpoint can name it; it never takes the others down.
Two specs for one dataSource or one serviceName are an error for both.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from druidflow.exceptions import DruidflowError
from druidflow.push.spec import RealtimeTask

SPEC_DIR_ENV = "DRUIDFLOW_PUSH_SPECS"
VARIABLE_KEY = "druidflow_push_specs"


@dataclass(frozen=True)
class Unreadable:
    """A spec source that could not be read or is not JSON."""

    message: str


@dataclass
class PushRegistry:
    tasks: dict[str, RealtimeTask] = field(default_factory=dict)  # by dataSource
    services: dict[str, RealtimeTask] = field(default_factory=dict)  # by serviceName
    errors: dict[str, str] = field(default_factory=dict)  # by where the spec came from

    @classmethod
    def of(cls, specs: Iterable[tuple[str, Any]]) -> PushRegistry:
        """From ``(origin, spec)`` pairs; ``origin`` names the spec in errors (a file, ``variable[2]``)."""
        reg = cls()
        loaded: list[tuple[str, RealtimeTask]] = []
        for origin, data in specs:
            if isinstance(data, Unreadable):
                reg.errors[origin] = data.message
                continue
            try:
                loaded.append((origin, RealtimeTask.load(data)))
            except DruidflowError as exc:
                reg.errors[origin] = str(exc)
        for key, attr in (("dataSource", "data_source"), ("serviceName", "service_name")):
            seen: dict[str, list[str]] = {}
            for origin, task in loaded:
                seen.setdefault(getattr(task, attr), []).append(origin)
            for value, origins in seen.items():
                if len(origins) > 1:
                    for origin in origins:
                        reg.errors[origin] = f"{key} {value!r} is configured more than once ({', '.join(origins)})"
        for origin, task in loaded:
            if origin not in reg.errors:
                reg.tasks[task.data_source] = task
                reg.services[task.service_name] = task
        return reg

    def by_data_source(self, data_source: str) -> Optional[RealtimeTask]:
        return self.tasks.get(data_source)

    def by_service(self, service_name: str) -> Optional[RealtimeTask]:
        return self.services.get(service_name)


def specs_from_dir(directory: Path) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append((str(path), json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            out.append((str(path), Unreadable(f"unreadable: {exc}")))
    return out


def specs_from_document(text: Optional[str], origin: str = VARIABLE_KEY) -> list[tuple[str, Any]]:
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        return [(origin, Unreadable(f"not JSON: {exc}"))]
    items = data if isinstance(data, list) else [data]
    return [(f"{origin}[{i}]", item) for i, item in enumerate(items)]


class CachedRegistry:
    """Reloads the registry at most every ``ttl_s`` seconds (specs change without restarting the API server)."""

    def __init__(self, load: Callable[[], PushRegistry], ttl_s: float = 10.0) -> None:
        self._load = load
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._value: Optional[PushRegistry] = None
        self._at = 0.0

    def __call__(self) -> PushRegistry:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._ttl:
                self._value = self._load()
                self._at = time.monotonic()
            return self._value


def spec_dir_from_env() -> Optional[Path]:
    value = os.environ.get(SPEC_DIR_ENV)
    return Path(value) if value else None
