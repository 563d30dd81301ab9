"""Druidflow operators: one per task step."""
