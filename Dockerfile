# Airflow 3.3 with Druidflow installed as a provider (hooks, operators, DB manager, plugin).
#
#   docker compose build        # uses this file (see docker-compose.yaml)
#
# The official image already has the postgres, celery and fab extras the compose file needs.
FROM apache/airflow:3.3.2

# Build from the repository root: only what the distribution needs is copied.
COPY --chown=airflow:root pyproject.toml README.md /opt/druidflow/
COPY --chown=airflow:root plugin /opt/druidflow/plugin
COPY --chown=airflow:root operators /opt/druidflow/operators
COPY --chown=airflow:root dags /opt/druidflow/dags

# The deep-storage volume takes this directory's owner when docker creates it.
RUN mkdir -p /opt/airflow/deep-storage /opt/airflow/data

# Pin Airflow to the image's own version so that pip never up- or downgrades it while resolving Druidflow.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/druidflow"[s3,kafka,celery]" \
 && python -c "import druidflow.airflow.provider_info, druidflow.operators.index"
