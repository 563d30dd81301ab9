"""Druidflow: Apache Druid's indexing-service tasks as a Python engine and an Airflow 3 provider."""

__version__ = "0.1.0"

from druidflow import lazy_pandas as _lazy_pandas

_lazy_pandas.install()
