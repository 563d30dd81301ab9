"""``SparkIndexOperator``: submit an ``index_hadoop`` task with ``spark-submit``, as Airflow users run Spark jobs.

It follows the conventions of ``apache-airflow-providers-apache-spark``'s ``SparkSubmitOperator`` (that provider is
not required): ``conn_id`` names a Connection of type ``spark`` whose host (and port) is the master (``yarn``,
``spark://host:7077``, ``k8s://...``, ``local[4]``) and whose extra may hold ``deploy-mode`` and ``spark-binary``;
``master`` overrides it; ``conf`` adds ``--conf`` pairs over the task's own ``jobProperties``. Without a Connection
the master is ``local[*]``. The driver program is :mod:`druidflow.tasks.spark_submit`, handed the URLs of the
``druidflow_metadata`` and ``druidflow_deep_storage`` Connections: locks, versions and publish stay Druidflow's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from druidflow.airflow.hooks import DeepStorageHook, DruidflowMetadataHook
from druidflow.operators.base import as_dict

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_MASTER = "local[*]"


def spark_submit_binary() -> str:
    """``spark-submit`` next to this Python (pyspark installs it there), else the one on ``PATH``."""
    beside = os.path.join(os.path.dirname(sys.executable), "spark-submit")
    return beside if os.path.exists(beside) else (shutil.which("spark-submit") or "spark-submit")


def master_from_connection(conn: Any) -> tuple[Optional[str], dict[str, Any]]:
    """The master of a ``spark`` Connection (host, with its port when given) and its extra."""
    extra = conn.extra_dejson if conn is not None else {}
    if conn is None or not conn.host:
        return None, extra
    host = conn.host if not conn.port else f"{conn.host}:{conn.port}"
    return host, extra


class SparkIndexOperator(BaseOperator):
    """Run one ``index_hadoop`` task as a ``spark-submit`` application; returns the task report.

    :param spec: the ``index_hadoop`` task (dict or JSON text; templated).
    :param conn_id: the ``spark`` Connection (host = master; extra ``deploy-mode``, ``spark-binary``); ignored when
        it does not exist.
    :param master: the master, over the Connection's.
    :param conf: Spark conf over the task's ``jobProperties``.
    :param deploy_mode: ``client`` or ``cluster``, over the Connection's.
    :param name: the application name (default: the task id).
    :param spark_binary: the spark-submit executable (default: the one pyspark installed).
    :param metadata_conn_id: the Connection of Druidflow's metadata DB, handed to the application.
    :param deep_storage_conn_id: the Connection of the deep storage, handed to the application.
    :param env_vars: more environment variables for the spark-submit process.
    """

    template_fields: Sequence[str] = ("spec", "conf", "master", "name")
    ui_color = "#e25a1c"

    def __init__(
        self,
        *,
        spec: Any,
        conn_id: str = "spark_default",
        master: Optional[str] = None,
        conf: Optional[dict[str, Any]] = None,
        deploy_mode: Optional[str] = None,
        name: Optional[str] = None,
        spark_binary: Optional[str] = None,
        metadata_conn_id: str = DruidflowMetadataHook.default_conn_name,
        deep_storage_conn_id: str = DeepStorageHook.default_conn_name,
        env_vars: Optional[dict[str, str]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.conn_id = conn_id
        self.master = master
        self.conf = conf or {}
        self.deploy_mode = deploy_mode
        self.name = name
        self.spark_binary = spark_binary
        self.metadata_conn_id = metadata_conn_id
        self.deep_storage_conn_id = deep_storage_conn_id
        self.env_vars = env_vars or {}

    def _connection(self) -> Any:
        from airflow.sdk import BaseHook

        try:
            return BaseHook.get_connection(self.conn_id)
        except Exception:  # no such Connection: local mode
            return None

    def build_command(self, spec_path: str, metadata_url: str, deep_storage: str, conn: Any = None) -> list[str]:
        """The spark-submit command line for the task at ``spec_path``."""
        from druidflow.specs.tasks import parse_task
        from druidflow.tasks import spark_submit

        task = parse_task(as_dict(self.spec, "spec"), "spec")
        if task.type != "index_hadoop":
            raise AirflowFailException(f"SparkIndexOperator runs index_hadoop tasks, not {task.type!r}")
        conn_master, extra = master_from_connection(conn)
        conf = {**task.spec.tuning_config.spark_conf(), **{k: str(v) for k, v in self.conf.items()}}
        master = self.master or conf.pop("spark.master", None) or conn_master or DEFAULT_MASTER
        conf.pop("spark.master", None)
        binary = self.spark_binary or extra.get("spark-binary") or spark_submit_binary()
        cmd = [binary, "--master", master, "--name", self.name or task.task_id]
        deploy_mode = self.deploy_mode or extra.get("deploy-mode")
        if deploy_mode:
            cmd += ["--deploy-mode", deploy_mode]
        for key, value in sorted(conf.items()):
            cmd += ["--conf", f"{key}={value}"]
        cmd += [spark_submit.__file__, spec_path, "--metadata-url", metadata_url, "--deep-storage", deep_storage]
        return cmd

    def submit_env(self) -> dict[str, str]:
        """The environment of spark-submit: this Python for the driver and the workers, and pyspark's own Spark
        home unless ``SPARK_HOME`` names another installation."""
        env = {**os.environ, **self.env_vars}
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        env.setdefault("PYSPARK_DRIVER_PYTHON", env["PYSPARK_PYTHON"])
        if "SPARK_HOME" not in env:
            try:
                import pyspark

                env["SPARK_HOME"] = os.path.dirname(pyspark.__file__)
            except ImportError:
                pass
        return env

    def execute(self, context: Context) -> dict[str, Any]:
        metadata_url = DruidflowMetadataHook(metadata_conn_id=self.metadata_conn_id).sqlalchemy_url
        deep_storage = DeepStorageHook(deep_storage_conn_id=self.deep_storage_conn_id).uri
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(as_dict(self.spec, "spec"), f)
            spec_path = f.name
        try:
            cmd = self.build_command(spec_path, metadata_url, deep_storage, self._connection())
            self.log.info("submitting: %s", " ".join(cmd[:-2] + ["--deep-storage", deep_storage]))
            done = subprocess.run(cmd, capture_output=True, text=True, env=self.submit_env(), check=False)
            for line in done.stderr.splitlines()[-50:]:
                self.log.info("spark-submit: %s", line)
            if done.returncode == 2:
                raise AirflowFailException(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "invalid index_hadoop task")
            if done.returncode != 0:
                raise AirflowException(f"spark-submit exited {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
            return json.loads(done.stdout.strip().splitlines()[-1])
        finally:
            os.unlink(spec_path)
