"""The driver program ``spark-submit`` runs for an ``index_hadoop`` task (what :class:`SparkIndexOperator` submits).

    spark-submit --master yarn --conf spark.executor.memory=4g <this file> task.json \\
        --metadata-url postgresql://... --deep-storage s3://bucket/druid

It runs every step of the task in the driver (locks, the Spark job, publish) against the given metadata database and
deep storage, prints the task report as JSON and exits 0; a task that fails prints its error and exits 1 (2 for an
invalid spec). The SparkSession is spark-submit's: master and conf come from its command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="druidflow-spark-submit", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="the index_hadoop task: a JSON file, or - for stdin")
    parser.add_argument("--metadata-url", default=None, help="SQLAlchemy URL of the druidflow tables (default: settings)")
    parser.add_argument("--deep-storage", default=None, help="deep storage directory or s3:// URI (default: settings)")
    parser.add_argument("--work-dir", default=None, help="local scratch directory")
    args = parser.parse_args(argv)

    from druidflow.exceptions import DruidflowError, SpecError
    from druidflow.tasks import hadoop
    from druidflow.tasks.runtime import Runtime

    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    try:
        rt = Runtime.from_urls(args.metadata_url, args.deep_storage, args.work_dir)
        report = hadoop.run(text, rt)
    except SpecError as exc:
        print(f"invalid index_hadoop task: {exc}", file=sys.stderr)
        return 2
    except DruidflowError as exc:
        print(f"index_hadoop task failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.model_dump()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
