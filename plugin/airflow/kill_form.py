"""The ``druidflow_kill`` trigger form: its Params, and the kill task it describes.

A person deleting data by hand gets a dry run unless they tick ``confirm``: the run then lists exactly the segments
and files a confirmed run would delete (in its log and its XCom), and deletes nothing. This holds for a whole
kill task pasted into ``spec`` too; only ``confirm`` makes a form-started kill real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from druidflow.exceptions import SpecError

#: Trigger-form field -> the kill task field it fills (to name the form field in errors about the built spec).
FORM_FIELD_PATHS = {
    "data_source": "dataSource",
    "interval": "interval",
    "versions": "versions",
    "batch_size": "batchSize",
    "limit": "limit",
    "max_used_status_last_updated_time": "maxUsedStatusLastUpdatedTime",
}


def kill_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_kill`` DAG (Airflow renders them as the trigger form)."""
    from airflow.sdk import Param

    fields = "Which unused segments to delete"
    safety = "Safety"
    whole = "Whole task JSON (optional)"
    return {
        "data_source": Param(None, type=["null", "string"], title="dataSource", section=fields,
                             description="The dataSource whose unused segments are deleted."),
        "interval": Param(None, type=["null", "string"], title="Interval", section=fields,
                          description="ISO interval (2024-01-01/2024-02-01). Only unused segments lying entirely "
                          "inside it are deleted; used segments never are."),
        "versions": Param([], type="array", items={"type": "string"}, title="Versions", section=fields,
                          description="Only these versions, one per line; empty = every version."),
        "batch_size": Param(100, type="integer", minimum=1, title="Batch size", section=fields,
                            description="Segments per batch (rows claimed, files deleted, rows deleted)."),
        "limit": Param(None, type=["null", "integer"], minimum=1, title="Limit", section=fields,
                       description="Delete at most this many segments; empty = no limit."),
        "max_used_status_last_updated_time": Param(
            None, type=["null", "string"], title="Marked unused at or before", section=fields,
            description="ISO instant: only segments marked unused at or before it (maxUsedStatusLastUpdatedTime).",
        ),
        "confirm": Param(False, type="boolean", title="Confirm: really delete", section=safety,
                         description_md="Off (the default): a **dry run** that lists what would be deleted and "
                         "deletes nothing. On: delete the listed segments and their files for good."),
        "spec": Param(None, type=["null", "object"], title="Druid kill task JSON", section=whole,
                      description_md='A whole `{"type": "kill", ...}` task; when given, the fields above are '
                      "ignored (confirm still applies)."),
    }


def kill_spec_from_form(params: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(kill task JSON, dry_run)`` for a trigger form: ``params["spec"]`` if given, else one built from the
    fields; ``dry_run`` is True unless ``confirm`` is ticked. Raises SpecError naming the form field."""
    dry_run = not _flag(params.get("confirm"))
    spec = params.get("spec")
    if isinstance(spec, str) and spec.strip():
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SpecError("spec", spec, f"is not valid JSON: {exc}") from None
    if spec:
        if not isinstance(spec, Mapping):
            raise SpecError("spec", spec, "must be a JSON object (a whole Druid kill task)")
        spec = dict(spec)
        spec.setdefault("type", "kill")
        return spec, dry_run
    data_source = _text(params.get("data_source"))
    if not data_source:
        raise SpecError("data_source", params.get("data_source"), "is required when no task JSON ('spec') is given")
    interval = _text(params.get("interval"))
    if not interval:
        raise SpecError("interval", params.get("interval"), "is required when no task JSON ('spec') is given")
    spec = {"type": "kill", "dataSource": data_source, "interval": interval}
    versions = params.get("versions") or []
    if isinstance(versions, str):
        versions = versions.replace(",", "\n").splitlines()
    versions = [str(v).strip() for v in versions if str(v).strip()]
    if versions:
        spec["versions"] = versions
    for field in ("batch_size", "limit"):
        value = params.get(field)
        if value not in (None, ""):
            spec[FORM_FIELD_PATHS[field]] = value
    cutoff = _text(params.get("max_used_status_last_updated_time"))
    if cutoff:
        spec["maxUsedStatusLastUpdatedTime"] = cutoff
    return spec, dry_run


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a field of the built kill task), if any."""
    for field, path in FORM_FIELD_PATHS.items():
        if spec_path == path or spec_path.startswith((path + ".", path + "[")):
            return field
    return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)
