"""Assertions shared by the spec tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from druidflow.exceptions import SpecError

_ANY = object()


def assert_spec_error(fn: Callable[[], Any], path: str, value: Any = _ANY, reason: str | None = None) -> SpecError:
    """Run ``fn``; it must raise SpecError at ``path`` whose message names the path and the value."""
    with pytest.raises(SpecError) as info:
        fn()
    err = info.value
    assert err.path == path, f"path {err.path!r} != {path!r}: {err}"
    message = str(err)
    assert message.startswith(path + ":"), message
    if value is not _ANY:
        assert err.value == value, f"value {err.value!r} != {value!r}: {err}"
        assert repr(err.value)[:60] in message, message
    if reason is not None:
        assert reason in err.reason, f"{reason!r} not in {err.reason!r}"
    return err
