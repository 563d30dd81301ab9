"""The reference dataset's columns and time span (no heavy imports, so every engine's child process stays lean)."""

from __future__ import annotations

COLUMNS = ("timestamp", "page", "language", "user", "country", "isRobot", "namespace", "added", "deleted", "delta")
DIMENSIONS = ("page", "language", "user", "country", "isRobot", "namespace")
METRICS = ("added", "deleted", "delta")
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAYS = 7
MS_PER_DAY = 86_400_000
SPAN_MS = DAYS * MS_PER_DAY
