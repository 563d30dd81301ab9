"""The realtime spec: Druid's index_realtime shape, validated with field paths, and the index task of a handoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from druidflow.exceptions import SpecError
from druidflow.intervals import Interval
from druidflow.push.spec import RealtimeTask

from .helpers import realtime_spec


def test_handoff_task_appends_at_priority_75_with_an_append_lock():
    task = RealtimeTask.load(realtime_spec("clicks", window="PT5M", max_rows_in_memory=123))
    assert (task.data_source, task.service_name, task.tuning.window_ms) == ("clicks", "clicks", 300_000)
    index = task.index_task(Interval.parse("2024-01-01T10/PT1H"), Path("/spool"), "index_realtime_x")
    assert (index.priority, index.lock_type, index.spec.io_config.append_to_existing) == (75, "APPEND", True)
    assert index.spec.tuning_config.max_rows_in_memory == 123
    assert [str(i) for i in index.spec.data_schema.granularity_spec.bucket_intervals()] == [
        "2024-01-01T10:00:00.000Z/2024-01-01T11:00:00.000Z"]


def test_bare_spec_and_service_name_and_priority_override():
    raw = realtime_spec("clicks", service_name="firehose:clicks")
    bare = RealtimeTask.load(raw["spec"])
    assert bare.service_name == "firehose:clicks"
    raw["context"] = {"priority": 90}
    assert RealtimeTask.load(raw).index_task(None, Path("/s"), "t").priority == 90


@pytest.mark.parametrize("mutate, path", [
    (lambda s: s["spec"]["tuningConfig"].update(windowPeriod="ten minutes"), "windowPeriod"),
    (lambda s: s["spec"]["tuningConfig"].update(windowPeriod="P1M"), "windowPeriod"),
    (lambda s: s["spec"]["tuningConfig"].update(basePersistDirectory="/tmp/x"), "basePersistDirectory"),
    (lambda s: s["spec"]["ioConfig"]["firehose"].update(bufferSize=0), "bufferSize"),
    (lambda s: s["spec"]["dataSchema"]["granularitySpec"].update(segmentGranularity="FORTNIGHT"), "segmentGranularity"),
    (lambda s: s["spec"]["dataSchema"]["granularitySpec"].update(intervals=["2024-01-01/P1D"]), "intervals"),
    (lambda s: s.update(context={"useConcurrentLocks": False}), "useConcurrentLocks"),
    (lambda s: s["spec"]["tuningConfig"].update(rejectionPolicy={"type": "messageTime"}), "rejectionPolicy"),
])
def test_bad_specs_name_the_field(mutate, path):
    spec = realtime_spec()
    mutate(spec)
    with pytest.raises(SpecError) as err:
        RealtimeTask.load(spec)
    assert path in str(err.value)
