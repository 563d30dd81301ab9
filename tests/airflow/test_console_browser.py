"""The console in a real browser (Debian's chromium driven by playwright) against a real Airflow: log in through
Airflow's login page, find the console in Airflow's navigation, open each view, click from a chunk to its segments
and on to the task that wrote them and its report, watch a page refresh while a task runs, preview a kill and
confirm it (which runs ``druidflow_kill``). Saves a screenshot of each view (to a scratch directory; see SHOTS).

Data: a real ``druidflow_index`` run of the wikipedia sample, a dry-run ``druidflow_auto_compaction`` plan, and the
``wiki`` dataSource of ``console_seed`` (every timeline state, locks active and revoked, a failed task).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow.cluster import AirflowCluster, druidflow_cluster
from tests.airflow.conftest import DAGS_FOLDER
from tests.airflow.console_seed import seed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "wikipedia-sample.json"
# The README shows the pictures in docs/console/; a test run writes its screenshots to a scratch directory so the
# checkout stays clean. DRUIDFLOW_CONSOLE_SCREENSHOTS=docs/console refreshes the README's pictures.
SHOTS = Path(os.environ.get("DRUIDFLOW_CONSOLE_SCREENSHOTS") or Path(tempfile.gettempdir()) / "druidflow-console-shots")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000  # a loaded 2-core box: generous, every wait polls for a state


@pytest.fixture(scope="module", params=["sqlite"])
def cluster(request, tmp_path_factory) -> Iterator[AirflowCluster]:
    home = tmp_path_factory.mktemp("airflow-console")
    dag_files = {name: (DAGS_FOLDER / name).read_text()
                 for name in ("druidflow_index.py", "druidflow_kill.py", "druidflow_auto_compaction.py")}
    # Never scheduled during the test (runs only when triggered): the plan shown is the one this test asks for.
    extra = {"DRUIDFLOW_AUTO_COMPACTION_SCHEDULE": "0 0 1 1 *"}
    with druidflow_cluster(request, home, dag_files, extra) as started:
        yield started


@pytest.fixture(scope="module")
def data(cluster) -> dict:
    """Run the index and the auto-compaction plan through Airflow, then seed ``wiki``."""
    from druidflow.metadata.engine import make_engine

    for dag in ("druidflow_index", "druidflow_kill", "druidflow_auto_compaction"):
        cluster.wait_for_dag(dag)
    inputs = cluster.home / "inputs"
    inputs.mkdir()
    shutil.copy(SAMPLE, inputs / SAMPLE.name)
    spec = json.loads((REPO / "examples" / "wikipedia-index.json").read_text())
    spec["spec"]["ioConfig"]["inputSource"]["baseDir"] = str(inputs)
    index_run = cluster.trigger("druidflow_index", {"spec": spec})
    assert cluster.wait_for_run("druidflow_index", index_run, timeout=300) == "success", cluster.task_logs("druidflow_index", index_run)
    config = {"compactionConfigs": [{"dataSource": "wikipedia", "skipOffsetFromLatest": "P1D"}]}
    plan_run = cluster.trigger("druidflow_auto_compaction", {"config": config, "dry_run": True})
    assert cluster.wait_for_run("druidflow_auto_compaction", plan_run, timeout=300) == "success", \
        cluster.task_logs("druidflow_auto_compaction", plan_run)
    index_task = cluster.xcom("druidflow_index", index_run, "index.submit")["id"]
    engine = make_engine(cluster.db_url)
    return {"index_run": index_run, "index_task": index_task, "engine": engine, "wiki": seed(engine)}


@pytest.fixture(scope="module")
def page(cluster, data):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(TIMEOUT_MS)
        pg = context.new_page()
        yield pg
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def console(page, cluster, hash_: str, loaded: str) -> None:
    """Open a console view and wait until the page shows it (not the view before: hash changes keep the page)."""
    url = f"{cluster.base_url}/druidflow-console/#/{hash_}"
    if page.url == url:
        page.reload()
    else:
        if "/druidflow-console/" in page.url:
            page.evaluate("delete document.body.dataset.hash")
        page.goto(url)
    page.wait_for_function(
        f"document.body.dataset.hash === location.hash && document.body.dataset.loaded === '{loaded}'"
    )


def test_1_login_and_find_the_console_in_airflows_navigation(page, cluster):
    page.goto(f"{cluster.base_url}/plugin/druidflow_console")
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "admin")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/plugin/druidflow_console")
    frame = page.frame_locator("iframe")
    frame.locator("#datasources").wait_for()
    assert "wikipedia" in frame.locator("#datasources").inner_text()
    assert page.get_by_text("Druidflow console").first.is_visible()  # the navigation entry
    shot(page, "in-airflow")


def test_2_datasources(page, cluster):
    console(page, cluster, "datasources", "datasources")
    rows = {r.locator("td").first.inner_text(): r.inner_text() for r in page.locator("#datasources tbody tr").all()}
    assert set(rows) == {"wiki", "wikipedia"}
    assert "2024-01-01/2024-01-08" in rows["wikipedia"] and "KiB" in rows["wikipedia"]
    assert "loadByPeriod P1M" in rows["wiki"] and "1 · 1000 B" in rows["wiki"]  # unused segment awaiting kill
    assert "to compact" in rows["wikipedia"]  # from the auto-compaction plan
    assert "not in the last plan" in rows["wiki"]
    shot(page, "datasources")


def test_3_timeline_then_a_chunk_then_the_task_that_wrote_it(page, cluster, data):
    console(page, cluster, "timeline/wiki", "timeline")
    svg = page.locator("#tl-svg")
    assert svg.locator("rect.set").count() == 8
    for state, n in (("visible", 4), ("partly-visible", 1), ("overshadowed", 1), ("incomplete", 1), ("unused", 1)):
        assert svg.locator(f"rect.set.{state}").count() == n, state
    shot(page, "timeline")

    # Zoom: a window of three days shows only what overlaps it, and the URL keeps the window.
    console(page, cluster, "timeline/wiki?start=2024-01-03T00:00:00.000Z&end=2024-01-06T00:00:00.000Z", "timeline")
    assert page.locator("#tl-window").inner_text().startswith("2024-01-03")
    assert page.locator("#tl-svg rect.set").count() == 4  # month, 03 old and new, 05
    page.locator("#tl-in").click()
    page.wait_for_function("location.hash.includes('start=2024-01-03T18')")

    console(page, cluster, "timeline/wikipedia", "timeline")
    page.locator("#tl-svg rect.set.visible").first.click()
    page.wait_for_selector("#set-segments tbody tr")
    title = page.locator("#set-title").inner_text()
    assert "2024-01-01/2024-01-02" in title
    segment_row = page.locator("#set-segments tbody tr").first.inner_text()
    assert '"type":"numbered"' in segment_row.replace(" ", "") and "KiB" in segment_row
    shot(page, "chunk")
    page.locator("#tl-set a", has_text=data["index_task"]).click()
    page.wait_for_selector("#row-stats")
    stats = page.locator("#row-stats").inner_text()
    assert "buildSegments" in stats and "16,000" in stats
    run_link = page.locator("a", has_text="DAG run")
    assert f"/dags/druidflow_index/runs/{data['index_run']}".replace(":", "%3A").replace("+", "%2B") in run_link.get_attribute("href")
    logs = page.locator("a", has_text="task logs").get_attribute("href")
    assert logs.endswith("/tasks/index.submit")
    shot(page, "task")
    page.locator("a", has_text="task logs").click()  # target=_top: Airflow's own task instance page
    page.wait_for_url("**/dags/druidflow_index/runs/**/tasks/index.submit**")


def test_4_tasks_filters_and_a_failed_tasks_error(page, cluster, data):
    console(page, cluster, "tasks", "tasks")
    listed = page.locator("#tasks").inner_text()
    assert data["index_task"] in listed and "index_wiki_failed" in listed
    shot(page, "tasks")
    page.select_option("#f-status", "FAILED")
    page.wait_for_function("location.hash.includes('status=FAILED')")
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr').length === 1")
    assert "no such directory" in page.locator("#tasks").inner_text()
    page.locator("#tasks tbody tr").first.click()
    page.wait_for_selector("#task-error")
    assert "spec.ioConfig.inputSource.baseDir" in page.locator("#task-error").inner_text()
    console(page, cluster, "task/index_wiki_01", "task")  # a report with a saved parse exception
    assert "Unparseable timestamp found" in page.locator("#parse-exceptions").inner_text()
    assert "1,234" in page.locator("#row-stats").inner_text()


def test_5_pages_refresh_while_tasks_run(page, cluster, data):
    from druidflow.metadata.store import MetadataStore

    console(page, cluster, "tasks?dataSource=wiki", "tasks")
    page.wait_for_selector("#live:not([hidden])")  # a seeded task is RUNNING
    MetadataStore(data["engine"]).insert_task("index_wiki_late", "index", "wiki", "index_wiki_late", {"type": "index"})
    page.wait_for_function("document.getElementById('tasks').innerText.includes('index_wiki_late')")  # no reload


def test_6_locks(page, cluster):
    console(page, cluster, "locks", "locks")
    rows = {r.locator("td").nth(6).inner_text().split("\n")[0]: r.inner_text() for r in page.locator("#locks tbody tr").all()}
    assert "active" in rows["index_wiki_running"] and "2024-01-07" in rows["index_wiki_running"]
    assert "revoked" in rows["compact_wiki_low"] and "index_wiki_high" in rows["compact_wiki_low"]
    assert "75" in rows["index_wiki_high"]
    shot(page, "locks")


def test_7_auto_compaction_plan(page, cluster):
    console(page, cluster, "compaction", "compaction")
    verdicts = page.locator("#verdicts tbody tr")
    assert verdicts.count() >= 1
    text = page.locator("#verdicts").inner_text()
    assert "wikipedia" in text and ("skipped: too recent" in text or "compact" in text)
    assert page.get_by_text("dry run").first.is_visible()
    shot(page, "compaction")


def test_8_kill_preview_then_confirm_runs_druidflow_kill(page, cluster, data):
    from druidflow.metadata.store import MetadataStore

    console(page, cluster, "kill?dataSource=wiki&interval=2024-01-02/2024-01-03", "kill")
    page.locator("#k-preview").click()
    page.wait_for_selector("#k-summary")
    assert "would delete 1 segment(s), 1000 bytes" in page.locator("#k-summary").inner_text()
    assert "wiki_2024-01-02" in page.locator("#k-segments").inner_text()
    assert "still used" in page.locator("#k-skipped").inner_text()
    assert len(MetadataStore(data["engine"]).unused_segments("wiki")) == 1  # a preview deletes nothing
    shot(page, "kill")
    assert page.locator("#k-confirm").is_disabled()
    page.locator("#k-sure").check()
    page.locator("#k-confirm").click()
    page.wait_for_selector("#k-triggered a")
    run_id = page.locator("#k-triggered a").inner_text()
    assert cluster.wait_for_run("druidflow_kill", run_id, timeout=300) == "success", cluster.task_logs("druidflow_kill", run_id)
    deadline = time.monotonic() + 30
    while MetadataStore(data["engine"]).unused_segments("wiki") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert MetadataStore(data["engine"]).unused_segments("wiki") == []
    console(page, cluster, "tasks?type=kill", "tasks")
    page.wait_for_function("document.querySelectorAll('#tasks tbody tr td .badge.SUCCESS').length === 1")
    page.locator("#tasks tbody tr").first.click()
    page.wait_for_selector("a:has-text('DAG run')")
    assert "/dags/druidflow_kill/runs/" in page.locator("a", has_text="DAG run").get_attribute("href")
    assert page.locator("a", has_text="task logs").get_attribute("href").endswith("/tasks/kill")
    assert "Kill report" in page.locator("#view").inner_text()
