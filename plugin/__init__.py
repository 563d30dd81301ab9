"""Druidflow: Apache Druid's indexing-service tasks as a Python engine and an Airflow 3 provider."""

__version__ = "0.1.0"
