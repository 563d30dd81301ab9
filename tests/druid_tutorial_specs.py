"""Druid's "Updating existing data" tutorial specs and data, retyped from apache/druid
``examples/quickstart/tutorial/`` (the tutorial text is ``docs/tutorials/tutorial-update-data.md``), shared by the
tests that run them:

* ``updates-init-index.json`` (commit 34a783f), ``updates-overwrite-index.json`` (0c111a6) and
  ``updates-append-index2.json`` (9da484f): the same spec but for the input file's ``filter`` and
  ``appendToExisting``, so one template writes all three;
* ``updates-append-index.json`` — the ``combining`` input source version (b8c7146) and the classic ``combining``
  firehose version with an ``ingestSegment`` delegate (1d5c3e0);
* ``updates-data.json`` (9982980), ``updates-data2.json`` (5ca16d0), ``updates-data4.json`` (24f2e8b), and
  ``updates-data3.json`` as the tutorial's ``timestamp``-keyed specs read it (its later revision 5de4b2a renames the
  key to ``__time``).

The specs' ``baseDir`` is ``quickstart/tutorial``, relative: tests write :data:`DATA` there under their working
directory so the specs run exactly as written.
"""

from __future__ import annotations

DATA = {
    "updates-data.json": [
        {"timestamp": "2018-01-01T01:01:35Z", "animal": "tiger", "number": 100},
        {"timestamp": "2018-01-01T03:01:35Z", "animal": "aardvark", "number": 42},
        {"timestamp": "2018-01-01T03:01:35Z", "animal": "giraffe", "number": 14124},
    ],
    "updates-data2.json": [
        {"timestamp": "2018-01-01T01:01:35Z", "animal": "lion", "number": 100},
        {"timestamp": "2018-01-01T03:01:35Z", "animal": "aardvark", "number": 9999},
        {"timestamp": "2018-01-01T04:01:35Z", "animal": "bear", "number": 111},
    ],
    "updates-data3.json": [
        {"timestamp": "2018-01-01T07:01:35Z", "animal": "octopus", "number": 115},
        {"timestamp": "2018-01-01T05:01:35Z", "animal": "mongoose", "number": 737},
        {"timestamp": "2018-01-01T06:01:35Z", "animal": "snake", "number": 1234},
        {"timestamp": "2018-01-01T01:01:35Z", "animal": "lion", "number": 300},
    ],
    "updates-data4.json": [
        {"timestamp": "2018-01-01T04:01:35Z", "animal": "bear", "number": 222},
        {"timestamp": "2018-01-01T09:01:35Z", "animal": "falcon", "number": 1241},
    ],
}

_SCHEMA = """
    "dataSource" : "updates-tutorial",
    "timestampSpec": {"column": "timestamp", "format": "iso"},
    "dimensionsSpec" : {"dimensions" : ["animal"]},
    "metricsSpec" : [
      { "type" : "count", "name" : "count" },
      { "type" : "longSum", "name" : "number", "fieldName" : "number" }
    ],
    "granularitySpec" : {
      "type" : "uniform", "segmentGranularity" : "day", "queryGranularity" : "minute",
      "intervals" : ["2018-01-01/2018-01-03"], "rollup" : true
    }"""


def _local_spec(filter_: str, append: bool) -> str:
    return """{
  "type" : "index_parallel",
  "spec" : {
    "dataSchema" : {%s},
    "ioConfig" : {
      "type" : "index_parallel",
      "inputSource" : {"type" : "local", "baseDir" : "quickstart/tutorial", "filter" : "%s"},
      "inputFormat" : {"type" : "json"},
      "appendToExisting" : %s
    },
    "tuningConfig" : {"type" : "index_parallel", "maxRowsPerSegment" : 5000000, "maxRowsInMemory" : 25000}
  }
}""" % (_SCHEMA, filter_, "true" if append else "false")  # noqa: UP031 - %s keeps the JSON's braces as written


UPDATES_INIT_INDEX = _local_spec("updates-data.json", append=False)
UPDATES_OVERWRITE_INDEX = _local_spec("updates-data2.json", append=False)
UPDATES_APPEND_INDEX2 = _local_spec("updates-data4.json", append=True)

# updates-append-index.json, combining input source version (b8c7146)
UPDATES_APPEND_INDEX = """{
  "type": "index_parallel",
  "spec": {
    "dataSchema": {
      "dataSource": "updates-tutorial",
      "dimensionsSpec": {"dimensions": ["animal"]},
      "timestampSpec": {"column": "timestamp", "format": "iso"},
      "metricsSpec": [
        { "type": "count", "name": "count"},
        { "type": "longSum", "name": "number", "fieldName": "number"}
      ],
      "granularitySpec": {
        "type": "uniform", "segmentGranularity": "day", "queryGranularity": "minute",
        "intervals": ["2018-01-01/2018-01-03"], "rollup": true
      }
    },
    "ioConfig": {
      "type": "index_parallel",
      "inputSource": {
        "type": "combining",
        "delegates": [
          {"type": "druid", "dataSource": "updates-tutorial", "interval": "2018-01-01/2018-01-03"},
          {"type": "local", "baseDir": "quickstart/tutorial", "filter": "updates-data3.json"}
        ]
      },
      "inputFormat": {"type": "json"},
      "appendToExisting": false
    },
    "tuningConfig": {
      "type": "index_parallel",
      "maxRowsPerSegment": 5000000,
      "maxRowsInMemory": 25000,
      "maxNumConcurrentSubTasks": 2,
      "forceGuaranteedRollup": true,
      "partitionsSpec": {"type": "hashed", "numShards": 1}
    }
  }
}"""

# updates-append-index.json, classic combining firehose version (1d5c3e0)
UPDATES_APPEND_INDEX_FIREHOSE = """{
  "type" : "index",
  "spec" : {
    "dataSchema" : {
      "dataSource" : "updates-tutorial",
      "parser" : {
        "type" : "string",
        "parseSpec" : {
          "format" : "json",
          "dimensionsSpec" : {"dimensions" : ["animal"]},
          "timestampSpec": {"column": "timestamp", "format": "iso"}
        }
      },
      "metricsSpec" : [
        { "type" : "count", "name" : "count" },
        { "type" : "longSum", "name" : "number", "fieldName" : "number" }
      ],
      "granularitySpec" : {
        "type" : "uniform", "segmentGranularity" : "week", "queryGranularity" : "minute",
        "intervals" : ["2018-01-01/2018-01-03"], "rollup" : true
      }
    },
    "ioConfig" : {
      "type" : "index",
      "firehose" : {
        "type": "combining",
        "delegates": [
          {"type" : "ingestSegment", "dataSource" : "updates-tutorial", "interval" : "2018-01-01/2018-01-03"},
          {"type" : "local", "baseDir" : "quickstart/tutorial", "filter" : "updates-data3.json"}
        ]
      },
      "appendToExisting" : false
    },
    "tuningConfig" : {"type" : "index", "maxRowsPerSegment" : 5000000, "maxRowsInMemory" : 25000}
  }
}"""
