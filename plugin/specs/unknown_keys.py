"""Keys Druid's JSON does not know: ignored with a warning, as Druid ignores them, except where that is dangerous.

Druid's Jackson mapper ignores unknown properties, and Druid's own specs rely on it (its integration test
``wikipedia_index_task_with_inputsource_transform.json`` spells ``patitionsSpec``). Druidflow accepts such a key,
does nothing with it, and says so: :func:`ignored_keys` lists each one by its full path
(``spec.tuningConfig.patitionsSpec``), which the task logs and puts into its report.

A misspelt key is refused instead — a :class:`SpecError` naming it — in the models of :data:`STRICT_MODELS`, where
ignoring it would silently run a more destructive task than the one written: a kill spec (a typo in ``interval``,
``versions`` or ``batchSize`` changes what is deleted), ``ioConfig`` (``apendToExisting`` would overwrite instead
of appending, ``dropExsting`` keep what should go), ``granularitySpec`` (``interval`` for ``intervals`` would
replace every chunk found in the data), the druid input source and ingestSegment firehose (``fliter`` or
``intervall`` re-ingests more than asked), ``transformSpec`` (``fitler`` would keep every row) and compaction's
``ioConfig``/``inputSpec``. ``docs/unknown-keys.md`` lists them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

#: model class name -> what a misspelt key there could silently do
STRICT_MODELS: dict[str, str] = {
    "KillTask": "a kill spec deletes data; a misspelt key would change what is deleted",
    "IndexIOConfig": "a misspelt appendToExisting/dropExisting would replace or keep data against the spec's intent",
    "GranularitySpec": "a misspelt intervals would make the task replace every time chunk found in the data",
    "DruidInputSource": "a misspelt interval/segments/filter would re-ingest more data than asked",
    "IngestSegmentFirehose": "a misspelt interval/segments/filter would re-ingest more data than asked",
    "CombiningInputSource": "a misspelt delegates would read other data than asked",
    "CombiningFirehose": "a misspelt delegates would read other data than asked",
    "TransformSpec": "a misspelt filter would keep every row",
    "CompactionIOConfig": "a misspelt inputSpec/dropExisting would compact or drop other data than asked",
    "CompactionIntervalSpec": "a misspelt interval would compact other data than asked",
    "SpecificSegmentsSpec": "a misspelt segments would compact other data than asked",
}


#: modules whose every model is strict: filters (``vaule`` decides which rows are kept or dropped), aggregators,
#: retention rules (a ``dropForever`` with a ``period`` would drop everything), the auto-compaction config (a
#: misspelt ``skipOffsetFromLatest`` would compact the newest data), Kafka supervisor and realtime specs, and the
#: records Druidflow itself writes.
STRICT_MODULES: dict[str, str] = {
    "druidflow.filters": "a misspelt filter field changes which rows are kept",
    "druidflow.retention": "a misspelt rule field changes which data is dropped",
    "druidflow.compaction.config": "a misspelt compaction setting changes which data is compacted",
    "druidflow.aggregators": "a misspelt aggregator field changes the metric's values",
    "druidflow.sketches": "a misspelt aggregator field changes the metric's values",
    "druidflow.sketch_aggregators": "a misspelt aggregator field changes the metric's values",
    # Supervisors and realtime tasks run on their own, with no report to carry a warning; their specs also refuse
    # the Druid fields Druidflow cannot honour (basePersistDirectory, ...) as unknown.
    "druidflow.streaming.kafka_spec": "a supervisor runs unattended: a misspelt offset or topic setting would read other data",
    "druidflow.streaming.kafka_task": "it is a record Druidflow writes itself",
    "druidflow.push.spec": "a realtime spec runs unattended; Druid's JVM-only realtime fields are refused",
    "druidflow.tasks.index": "it is a record Druidflow writes itself",
    "druidflow.tasks.index_plan": "it is a record Druidflow writes itself",
    "druidflow.tasks.protocol": "it is a record Druidflow writes itself",
}


def unknown_key_error(model: BaseModel) -> Any:
    """The SpecError for the first unknown key of a strict model, or None."""
    from druidflow.exceptions import SpecError

    reason = STRICT_MODELS.get(type(model).__name__) or STRICT_MODULES.get(type(model).__module__)
    extra = model.model_extra or {}
    if reason is None or not extra:
        return None
    key = next(iter(extra))
    known = sorted(f.alias or n for n, f in type(model).model_fields.items())
    return SpecError(key, extra[key], f"unknown field (known: {', '.join(known)}); refused because {reason}")


def spec_warnings(model: Any, path: str = "") -> list[str]:
    """One line per key of ``model`` (and the models inside it) that is accepted but ignored, by full path, in
    field order: unknown keys, and the fields a model's ``ignored_fields()`` names (Druid's precedence rules)."""
    out: list[str] = []
    if not isinstance(model, BaseModel):
        return out
    for key in model.model_extra or {}:
        out.append(f"{_join(path, key)}: unknown key, ignored (as Druid ignores unknown properties)")
    hook = getattr(model, "ignored_fields", None)
    if callable(hook):
        out.extend(f"{_join(path, key)}: ignored: {why}" for key, why in hook())
    for name, info in type(model).model_fields.items():
        out.extend(_walk(getattr(model, name, None), _join(path, info.alias or name)))
    return out


def ignored_keys(model: Any, path: str = "") -> list[str]:
    """The full paths of the unknown keys alone."""
    return [w.split(": ", 1)[0] for w in spec_warnings(model, path) if "unknown key" in w]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(value: Any, path: str) -> list[str]:
    if isinstance(value, BaseModel):
        return spec_warnings(value, path)
    if isinstance(value, (list, tuple)):
        return [k for i, item in enumerate(value) for k in _walk(item, f"{path}[{i}]")]
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in _walk(item, f"{path}.{key}")]
    return []
