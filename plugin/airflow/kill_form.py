"""The ``druidflow_kill`` trigger form: its fields, and the kill task it describes.

A person deleting data by hand gets a dry run unless they tick ``confirm``: the run then lists exactly the segments
and files a confirmed run would delete (in its log and its XCom), and deletes nothing. This holds for a whole
kill task pasted into ``spec`` too; only ``confirm`` makes a form-started kill real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from druidflow.airflow.trigger_form import FormField, TriggerForm, data_source_field

_FIELDS = "Which unused segments to delete"

KILL_FORM = TriggerForm(
    task_type="kill",
    spec_title="Druid kill task JSON",
    spec_description='A whole `{"type": "kill", ...}` task; when given, the fields are ignored (confirm still applies).',
    fields=(
        data_source_field("The dataSource whose unused segments are deleted.", section=_FIELDS),
        FormField("interval", "interval", "Interval", required=True, section=_FIELDS,
                  description="ISO interval (2024-01-01/2024-02-01). Only unused segments lying entirely inside it are "
                  "deleted; used segments never are."),
        FormField("versions", "versions", "Versions", kind="lines", default=[], section=_FIELDS,
                  description="Only these versions, one per line; empty = every version."),
        FormField("batch_size", "batchSize", "Batch size", kind="integer", default=100, minimum=1, section=_FIELDS,
                  description="Segments per batch (rows claimed, files deleted, rows deleted)."),
        FormField("limit", "limit", "Limit", kind="integer", minimum=1, section=_FIELDS,
                  description="Delete at most this many segments; empty = no limit."),
        FormField("max_used_status_last_updated_time", "maxUsedStatusLastUpdatedTime", "Marked unused at or before",
                  section=_FIELDS,
                  description="ISO instant: only segments marked unused at or before it (maxUsedStatusLastUpdatedTime)."),
        FormField("confirm", None, "Confirm: really delete", kind="boolean", default=False, section="Safety",
                  description="Off (the default): a **dry run** that lists what would be deleted and deletes nothing. "
                  "On: delete the listed segments and their files for good."),
    ),
)


def kill_params() -> dict[str, Any]:
    """The ``params`` of the ``druidflow_kill`` DAG (Airflow renders them as the trigger form)."""
    return KILL_FORM.params()


def kill_spec_from_form(params: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``(kill task JSON, dry_run)`` for a trigger form: ``params["spec"]`` if given, else one built from the
    fields; ``dry_run`` is True unless ``confirm`` is ticked. Raises SpecError naming the form field."""
    confirm = next(f for f in KILL_FORM.fields if f.name == "confirm").value(params)
    spec = KILL_FORM.spec_from_form(params)
    spec.setdefault("type", "kill")
    return spec, not confirm


def form_field_for(spec_path: str) -> str | None:
    """The trigger-form field that fills ``spec_path`` (a field of the built kill task), if any."""
    return KILL_FORM.field_for(spec_path)
