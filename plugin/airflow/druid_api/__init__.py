"""Druid's Overlord and Coordinator HTTP API, served by the Druidflow plugin on the Airflow API server."""
