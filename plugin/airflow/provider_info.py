"""What Airflow's ProvidersManager learns about Druidflow (entry point ``apache_airflow_provider``).

Everything here is plain data: Airflow reads it at start-up in every component, so it imports nothing.
"""

from __future__ import annotations

from typing import Any

#: Connection type of the metadata/lock database connection (default conn id ``druidflow_metadata``).
METADATA_CONN_TYPE = "druidflow"
#: Connection type of the deep storage connection (default conn id ``druidflow_deep_storage``).
DEEP_STORAGE_CONN_TYPE = "druidflow_deep_storage"

_INTEGRATION = "Druidflow"


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow validates against ``provider_info.schema.json``."""
    from druidflow import __version__

    return {
        # Must equal the distribution name, or provider discovery rejects the package.
        "package-name": "druidflow",
        "name": "Druidflow",
        "description": "Apache Druid's indexing-service tasks (index, compact, kill, merge/append, convert) with "
        "prioritised task locks, run as Airflow tasks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://druid.apache.org/docs/latest/ingestion/tasks",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "druidflow.operators.druid_task",
                    "druidflow.operators.index",
                    "druidflow.operators.kill",
                    "druidflow.operators.compact",
                ],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": ["druidflow.airflow.hooks"]}],
        "connection-types": [
            {
                "connection-type": METADATA_CONN_TYPE,
                "hook-class-name": "druidflow.airflow.hooks.DruidflowMetadataHook",
                "hook-name": "Druidflow metadata DB",
                "conn-fields": {
                    "sqlalchemy_url": {
                        "label": "SQLAlchemy URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "Full SQLAlchemy URL of the database holding the druidflow_* tables, e.g. "
                        "sqlite:////opt/airflow/airflow.db or postgresql+psycopg2://user:pw@host/db. "
                        "When set, host/login/password/port/schema are ignored.",
                    },
                    "dialect": {
                        "label": "Dialect",
                        "schema": {"type": ["string", "null"], "default": "postgresql+psycopg2"},
                        "description": "SQLAlchemy dialect+driver used with the host/port/login fields.",
                    },
                    "lock_lease_seconds": {
                        "label": "Lock lease (seconds)",
                        "schema": {"type": ["number", "null"], "default": 600},
                        "description": "How long a lock lives without a heartbeat. Steps heartbeat while they run; "
                        "the lease must cover the wait between two steps of a workflow.",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"schema": "Database", "host": "Host (or SQLite file path)"},
                    "placeholders": {"host": "postgres", "schema": "airflow", "port": "5432"},
                },
            },
            {
                "connection-type": DEEP_STORAGE_CONN_TYPE,
                "hook-class-name": "druidflow.airflow.hooks.DeepStorageHook",
                "hook-name": "Druidflow deep storage",
                "conn-fields": {
                    "uri": {
                        "label": "Deep storage URI",
                        "schema": {"type": ["string", "null"]},
                        "description": "A local/shared directory (/data/deep-storage or file:///...) or s3://bucket/prefix.",
                    },
                    "aws_conn_id": {
                        "label": "AWS connection id",
                        "schema": {"type": ["string", "null"]},
                        "description": "For s3:// URIs: an 'aws' Connection whose login/password are the access key "
                        "and secret and whose extra holds endpoint_url / region_name. Leave empty to use "
                        "this connection's own login/password/extra, or the default AWS credential chain.",
                    },
                    "endpoint_url": {
                        "label": "S3 endpoint URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "For S3-compatible stores (MinIO, moto): http://minio:9000.",
                    },
                    "region_name": {"label": "S3 region", "schema": {"type": ["string", "null"]}},
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "AWS access key id", "password": "AWS secret access key"},
                    "placeholders": {},
                },
            },
        ],
        "plugins": [{"name": "druidflow", "plugin-class": "druidflow.airflow.plugin.DruidflowPlugin"}],
        "db-managers": ["druidflow.airflow.db_manager.DruidflowDBManager"],
    }
