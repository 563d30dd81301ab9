"""Compaction beyond the task itself: the compaction-state fingerprint and the automatic-compaction planner.

* :mod:`druidflow.compaction.state` — what a compaction stores on its output segments (``lastCompactionState``),
  its fingerprint, and whether a time chunk still needs compacting under a given configuration (with a reason).
* :mod:`druidflow.compaction.config` — the per-dataSource auto-compaction configuration (Druid's
  ``DataSourceCompactionConfig``) and the settings around it (slots, ordering policy).
* :mod:`druidflow.compaction.planner` — the scheduler: walks each dataSource's time chunks newest first and gives
  every chunk a verdict with a reason (compact, too recent, too big, locked, already compacted, no free slot).

The ``compact`` task itself is :mod:`druidflow.tasks.compact`.
"""
