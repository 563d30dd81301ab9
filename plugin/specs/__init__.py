"""Pydantic models of Druid's task JSON, accepted as Druid users write it (camelCase)."""
