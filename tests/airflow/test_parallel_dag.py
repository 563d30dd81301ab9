"""``druidflow_index_parallel`` under a real scheduler (LocalExecutor): the scan phase, mapped per split, decides
single_dim ranges for chunks found from the data (no intervals), and the result equals the in-process run."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.tasks.test_index_parallel import parallel_spec, visible, write_files
from tests.tasks.test_index_partitioning import dup_heavy_rows

pytestmark = pytest.mark.e2e
DAG_ID = "druidflow_index_parallel"


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("airflow-parallel")
    with druidflow_cluster(request, home, {"druidflow_index_parallel.py": (DAGS_FOLDER / "druidflow_index_parallel.py").read_text()}) as c:
        yield c


def test_scan_decide_partial_merge_publish_as_mapped_tasks(cluster, tmp_path):
    from druidflow.tasks import parallel
    from druidflow.tasks.runtime import Runtime

    rows = dup_heavy_rows(4000)
    d = write_files(tmp_path, rows, n_files=2, fmt="csv")
    partitions = {"type": "single_dim", "partitionDimension": "a", "targetRowsPerSegment": 300}
    spec = parallel_spec(d, partitions, fmt="csv", intervals=None, split={"type": "maxSize", "maxSplitSize": 30_000})
    cluster.wait_for_dag(DAG_ID)
    run_id = cluster.trigger(DAG_ID, {"spec": spec})
    state = cluster.wait_for_run(DAG_ID, run_id, timeout=400)
    states = cluster.task_states(DAG_ID, run_id)
    assert state == "success", f"{states}\n{cluster.task_logs(DAG_ID, run_id)[-6000:]}"
    assert len(states["index_parallel.scan"]) == len(states["index_parallel.partial_segments"]) >= 3
    assert len(states["index_parallel.merge_segments"]) >= 4  # (chunk, range) pairs of two days

    rt = Runtime.from_urls(cluster.db_url, str(cluster.deep_storage), tmp_path / "work")
    reference = copy.deepcopy(spec)
    reference["spec"]["dataSchema"]["dataSource"] = "ref"
    parallel.run(reference, rt)
    assert visible(rt, "pp") == visible(rt, "ref")
    assert sum(r["count"] for r in visible(rt, "pp")) == len(rows)
    assert not (cluster.deep_storage / parallel.PARTIALS).exists() or not any(p.is_file() for p in (cluster.deep_storage / parallel.PARTIALS).rglob("*"))
