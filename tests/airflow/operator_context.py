"""What an operator's ``execute`` is handed when a test calls it directly: a context with the task instance
parts the operators use, and values passed on as a downstream task receives them."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk.execution_time.context import OutletEventAccessors


class FakeTI:
    """What the operators use of a RuntimeTaskInstance: xcom_push and try_number."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = json.loads(json.dumps(value))  # XComs must be JSON


def context(**extra: Any) -> dict[str, Any]:
    return {"ti": FakeTI(), "params": {}, "outlet_events": OutletEventAccessors(), **extra}


def xcom(value: Any) -> Any:
    """What a downstream task receives: the value after a JSON round trip."""
    return json.loads(json.dumps(value))
