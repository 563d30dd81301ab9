"""What a user sees when something is wrong, on the command line: one line on stderr, a non-zero exit, nothing
deleted by surprise. Every test runs ``druidflow`` as a real subprocess, as a user does."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def druidflow(*args: str, env: dict, cwd: Path = ROOT, stdin: str | None = None, code: str | None = None):
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "druidflow.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("druidflow: error: "), out.stderr
    return lines[0]


@pytest.fixture
def env(tmp_path, sqlite_url) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("DRUIDFLOW_")}
    e["DRUIDFLOW_METADATA_URL"] = sqlite_url
    e["DRUIDFLOW_DEEP_STORAGE"] = str(tmp_path / "deep")
    e["DRUIDFLOW_WORK_DIR"] = str(tmp_path / "work")
    return e


@pytest.fixture
def ingested(env) -> dict:
    out = druidflow("run", "examples/wikipedia-index.json", env=env)
    assert out.returncode == 0, out.stderr
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- metadata DB


def test_a_string_that_is_not_a_url_names_the_setting(env):
    line = one_error_line(druidflow("--metadata-url", "notaurl", "segments", "wikipedia", env=env))
    assert "--metadata-url" in line and "'notaurl' is not a database URL" in line
    env["DRUIDFLOW_METADATA_URL"] = "notaurl"
    assert "DRUIDFLOW_METADATA_URL" in one_error_line(druidflow("tasks", env=env))


def test_an_unreachable_server_is_one_line_naming_host_and_port(env):
    port = free_port()
    line = one_error_line(druidflow("tasks", "--metadata-url", f"postgresql+psycopg2://postgres@127.0.0.1:{port}/x", env=env))
    assert f"cannot reach the database server at 127.0.0.1:{port}" in line and "refused" in line


@pytest.mark.postgres
def test_a_missing_database_says_so_and_how_to_create_it(env, pg_server):
    url = pg_server.rsplit("/", 1)[0] + "/no_such_druidflow_db"
    line = one_error_line(druidflow("tasks", "--metadata-url", url, env=env))
    assert '"no_such_druidflow_db" does not exist' in line and "createdb no_such_druidflow_db" in line


def test_an_unopenable_sqlite_path_names_the_file_and_why(env, tmp_path):
    line = one_error_line(druidflow("tasks", "--metadata-url", f"sqlite:///{tmp_path}/missing/dir/m.db", env=env))
    assert f"cannot open the SQLite database {tmp_path}/missing/dir/m.db" in line and "does not exist" in line
    line = one_error_line(druidflow("tasks", "--metadata-url", f"sqlite:///{tmp_path}", env=env))
    assert "it is a directory" in line


@pytest.mark.postgres
def test_a_plain_postgresql_url_uses_an_installed_driver(env, pg_url):
    plain = re.sub(r"^postgresql\+\w+://", "postgresql://", pg_url)
    assert plain.startswith("postgresql://")
    out = druidflow("datasources", "--metadata-url", plain, env=env)
    assert out.returncode == 0, out.stderr
    assert "(none)" in out.stdout


def test_a_driver_that_is_not_installed_names_the_package(env):
    line = one_error_line(druidflow("tasks", "--metadata-url", "mysql://u@127.0.0.1/db", env=env))
    assert "needs the Python package mysqlclient" in line and "not installed" in line


def test_a_database_without_druidflow_tables_names_the_command_that_creates_them(env, tmp_path):
    import sqlite3

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("create table other (a)").connection.commit()
    out = druidflow("locks", "--metadata-url", f"sqlite:///{empty}", env=env)
    assert "druidflow migrate" in one_error_line(out)
    migrated = druidflow("migrate", "--metadata-url", f"sqlite:///{empty}", env=env)
    assert migrated.returncode == 0 and "revision" in migrated.stdout, migrated.stderr
    assert druidflow("locks", "--metadata-url", f"sqlite:///{empty}", env=env).returncode == 0


def test_the_lockbox_and_store_on_a_database_without_tables_name_the_command(tmp_path):
    import sqlite3

    from druidflow.exceptions import MetadataError
    from druidflow.locks import TaskLockbox
    from druidflow.metadata.store import MetadataStore

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("create table other (a)").connection.commit()
    for call in (lambda: TaskLockbox(f"sqlite:///{empty}").locks(), lambda: MetadataStore(f"sqlite:///{empty}").segments("w")):
        with pytest.raises(MetadataError, match="druidflow --metadata-url URL migrate") as caught:
            call()
        assert "no such table" in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------- kill


def test_druidflow_run_of_the_bundled_kill_example_deletes_nothing_without_confirm(ingested):
    env = ingested
    assert druidflow("mark-unused", "wikipedia", "--all", env=env).returncode == 0
    out = druidflow("run", "examples/kill-wikipedia.json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["killUnusedSegments"]  # Druid's KillTaskReport, Druidflow's counts beside it
    assert report["payload"]["numSegmentsKilled"] == 0
    plan = report["druidflowDetails"]
    assert plan["dryRun"] is True and plan["numSegmentsToKill"] == 7 and "numSegmentsKilled" not in plan
    assert "DRY RUN" in out.stderr
    assert len(json.loads(druidflow("segments", "wikipedia", "--all", "--json", env=env).stdout)) == 7
    done = druidflow("run", "examples/kill-wikipedia.json", "--confirm", env=env)
    assert done.returncode == 0 and json.loads(done.stdout)["killUnusedSegments"]["payload"]["numSegmentsKilled"] == 7, done.stderr
    assert "does not exist" in one_error_line(druidflow("segments", "wikipedia", "--all", env=env))


# ---------------------------------------------------------------------------------------------- inputs


def test_an_input_matching_no_file_fails_at_submit_naming_base_dir_and_filter(env, tmp_path):
    spec = json.loads((ROOT / "examples" / "wikipedia-index.json").read_text())
    spec["spec"]["ioConfig"]["inputSource"] = {"type": "local", "baseDir": str(ROOT / "examples"), "filter": "*.nomatch"}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    line = one_error_line(druidflow("run", str(path), env=env))
    assert f"baseDir {ROOT / 'examples'}" in line and "'*.nomatch'" in line
    assert json.loads(druidflow("tasks", "--json", env=env).stdout) == []  # refused at submit: no task recorded


# ---------------------------------------------------------------------------------------------- dataSources


@pytest.mark.parametrize(
    "args",
    [
        ("segments", "wikipedai"),
        ("timeline", "wikipedai"),
        ("read", "wikipedai"),
        ("kill", "wikipedai", "2024-01-01/2024-02-01"),
        ("mark-unused", "wikipedai", "--all"),
        ("mark-used", "wikipedai", "--all"),
        ("rules", "wikipedai"),
    ],
)
def test_an_unknown_datasource_is_said_not_to_exist(ingested, args):
    line = one_error_line(druidflow(*args, env=ingested))
    assert "dataSource 'wikipedai' does not exist" in line and "did you mean 'wikipedia'" in line


def test_datasources_lists_them_with_their_segment_counts(ingested):
    env = ingested
    assert druidflow("mark-unused", "wikipedia", "--interval", "2024-01-01/2024-01-03", env=env).returncode == 0
    out = druidflow("datasources", "--json", env=env)
    assert json.loads(out.stdout) == [{"dataSource": "wikipedia", "usedSegments": 5, "unusedSegments": 2}]
    assert re.search(r"^wikipedia\s+5\s+2$", druidflow("datasources", env=env).stdout, re.M)


def test_rules_may_be_set_before_a_datasource_exists(env):
    out = druidflow("rules", "future", "--set", '[{"type": "dropForever"}]', env=env)
    assert out.returncode == 0 and "has no segments yet" in out.stderr
    assert json.loads(druidflow("rules", "future", env=env).stdout) == [{"type": "dropForever"}]


def test_mark_used_and_unused_that_change_nothing_say_why(ingested):
    env = ingested

    def mark(*args: str) -> str:
        out = druidflow(*args, env=env)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "only overlap it" in mark("mark-unused", "wikipedia", "--interval", "2024-01-01T05/2024-01-02T05")
    assert "no segment of wikipedia overlaps" in mark("mark-unused", "wikipedia", "--interval", "2030-01-01/2030-02-01")
    assert "1 id(s) are not segments of wikipedia" in mark("mark-unused", "wikipedia", "--segment", "nope")
    assert "all 7 segment(s) of wikipedia already are used" in mark("mark-used", "wikipedia", "--all")
    assert "marked 1 segment(s)" in mark("mark-unused", "wikipedia", "--interval", "2024-01-01/2024-01-02")
    assert "already are unused" in mark("mark-unused", "wikipedia", "--interval", "2024-01-01/2024-01-02")
    # re-ingesting overshadows the unused day: marking it used again would bring back nothing visible
    assert druidflow("run", "examples/wikipedia-index.json", env=env).returncode == 0
    seg = json.loads(druidflow("segments", "wikipedia", "--all", "--json", env=env).stdout)
    old = next(s["id"] for s in seg if not s["used"] and s["interval"].startswith("2024-01-01"))
    assert "would be overshadowed" in mark("mark-used", "wikipedia", "--segment", old)


# ---------------------------------------------------------------------------------------------- flags, help


def test_global_flags_are_accepted_after_the_command(env, tmp_path):
    url = f"sqlite:///{tmp_path}/after.db"
    clean = {k: v for k, v in env.items() if not k.startswith("DRUIDFLOW_METADATA")}
    out = druidflow("run", "examples/wikipedia-index.json", "--metadata-url", url, "--deep-storage", str(tmp_path / "d2"), env=clean)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "after.db").exists() and (tmp_path / "d2" / "wikipedia").is_dir()
    # before the command, and not reset by a command that does not repeat it
    listing = druidflow("--metadata-url", url, "datasources", "--json", env=clean)
    assert json.loads(listing.stdout)[0]["dataSource"] == "wikipedia"


def _commands() -> dict:
    from druidflow.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return dict(sub.choices)


def test_help_of_every_command_shows_each_option_with_its_default(env):
    commands = _commands()
    assert {"run", "datasources", "segments", "timeline", "read", "tasks", "locks", "kill", "mark-unused", "mark-used",
            "rules", "apply-rules", "orphans", "migrate", "demo"} <= set(commands)
    for name, parser in commands.items():
        out = druidflow(name, "--help", env=env)
        assert out.returncode == 0, out.stderr
        entries: list[str] = []  # one per option: its flags line and the indented help lines after it
        for line in out.stdout.split("options:", 1)[1].splitlines():
            if re.match(r"^  -", line):
                entries.append(line)
            elif entries and line.startswith("   "):
                entries[-1] += " " + line.strip()
        for action in parser._actions:
            if not action.option_strings or action.dest == "help":
                continue
            flag = max(action.option_strings, key=len)
            (own,) = [e for e in entries if re.search(rf"(^|[ ,]){re.escape(flag)}\b", e.split("  ", 2)[1])]
            assert "default" in own, f"druidflow {name} --help: {flag} shows no default: {own!r}"


def test_the_readme_lists_every_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## The command line", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"druidflow ([a-z][a-z-]+)", block))
    assert set(_commands()) <= listed, set(_commands()) - listed


# ---------------------------------------------------------------------------------------------- extras


def test_s3_without_boto3_names_the_extra(env):
    hide_boto3 = (
        "import sys; sys.modules['boto3'] = None; sys.modules['botocore'] = None\n"
        "from druidflow.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    line = one_error_line(druidflow("tasks", "--deep-storage", "s3://bucket/prefix", env=env, code=hide_boto3))
    assert "pip install 'druidflow[s3]'" in line


def test_standalone_binds_loopback_by_default(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / "scripts" / "airflow-standalone").write_text((ROOT / "scripts" / "airflow-standalone").read_text())
    (repo / "scripts" / "setup").write_text("#!/bin/sh\n")
    fake = repo / ".venv" / "bin" / "airflow"
    fake.write_text('#!/bin/sh\necho "args=$*"\nenv | grep -E "^AIRFLOW__(API|CORE__EXECUTION)" | sort\n')
    for p in (repo / "scripts" / "airflow-standalone", repo / "scripts" / "setup", fake):
        p.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    out = subprocess.run([str(repo / "scripts" / "airflow-standalone")], env=clean, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "args=standalone" in out.stdout
    assert "AIRFLOW__API__HOST=127.0.0.1" in out.stdout
    assert "AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:8080/execution/" in out.stdout
    # ... and Airflow's api-server takes its host from that setting
    real = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "config", "get-value", "api", "host"],
        env={**clean, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__API__HOST": "127.0.0.1"},
        capture_output=True, text=True, timeout=120,
    )
    assert real.stdout.strip() == "127.0.0.1", real.stderr
    chosen = subprocess.run(
        [str(repo / "scripts" / "airflow-standalone")], env={**clean, "AIRFLOW__API__HOST": "0.0.0.0"},
        capture_output=True, text=True, timeout=60,
    )
    assert "AIRFLOW__API__HOST=0.0.0.0" in chosen.stdout  # serving other machines stays possible, when asked
