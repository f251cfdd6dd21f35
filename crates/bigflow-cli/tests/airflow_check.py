"""Loads generated DAGs into real Airflow and checks them against the manifest.

Usage: python airflow_check.py DAGS_DIR MANIFEST_JSON PROJECT_BINARY LOGICAL_DATE REPORT_JSON

Run with the Python of an Airflow venv (2.10 or 3.x), AIRFLOW_HOME set to a
scratch directory and AIRFLOW_VAR_<NAME> set for the config Variable. For
every workflow of the manifest: the DAG imports without errors, its tasks,
upstream ids, schedule, start date, retries, retry delay and timeouts equal
the workflow's; then each task's templated fields are rendered by Airflow for
LOGICAL_DATE and the rendered command is run against PROJECT_BINARY (the
image's binary path replaced by the local one). Writes a JSON report to
REPORT_JSON (Airflow logs to stdout); exits non-zero on the first mismatch.
"""
import copy
import json
import os
import subprocess
import sys
import types

import pendulum
from airflow import __version__ as airflow_version
from airflow.models.dagbag import DagBag

try:  # Airflow 3
    from airflow.sdk.execution_time.context import VariableAccessor
except ImportError:  # Airflow 2
    from airflow.utils.context import VariableAccessor


def fail(message):
    print(f"MISMATCH: {message}", file=sys.stderr)
    sys.exit(1)


def expect(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")


def schedule_of(dag):
    value = getattr(dag, "schedule", None)
    if value is None or not isinstance(value, str):
        value = getattr(dag, "schedule_interval", value)
    return value


def render(task, logical_date, run_after):
    """Renders a copy of the task (rendering replaces the fields in place)."""
    task = copy.deepcopy(task)
    context = {
        "logical_date": logical_date,
        "dag_run": types.SimpleNamespace(logical_date=logical_date, run_after=run_after),
        "var": {"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
    }
    task.render_template_fields(context)
    return list(task.cmds) + list(task.arguments)


def main(dags_dir, manifest_path, binary, logical, report_path, heavy=""):
    # Workflows whose jobs need engines (Spark, ...): their rendered commands
    # are checked with --dry-run instead of being executed.
    heavy = set(filter(None, heavy.split(",")))
    manifest = json.load(open(manifest_path))
    bag = DagBag(dags_dir, include_examples=False)
    if bag.import_errors:
        fail(f"import errors: {bag.import_errors}")
    when = pendulum.parse(logical, tz="UTC")
    report = {"airflow": airflow_version, "dags": len(bag.dags), "runs": []}
    expect("number of DAGs", len(bag.dags), len(manifest["workflows"]))
    for wf in manifest["workflows"]:
        matches = [d for i, d in bag.dags.items() if i.startswith(wf["workflow_id"] + "__v")]
        expect(f"DAGs of {wf['workflow_id']}", len(matches), 1)
        dag = matches[0]
        expect(f"{dag.dag_id} schedule", schedule_of(dag), wf["schedule_interval"])
        expect(f"{dag.dag_id} max_active_runs", dag.max_active_runs, 1)
        expect(f"{dag.dag_id} task ids", sorted(dag.task_ids), sorted(j["id"].replace("_", "-") for j in wf["jobs"]))
        for job in wf["jobs"]:
            task = dag.get_task(job["id"].replace("_", "-"))
            where = f"{dag.dag_id}.{task.task_id}"
            expect(f"{where} upstream", sorted(task.upstream_task_ids), sorted(p.replace("_", "-") for p in job["depends_on"]))
            expect(f"{where} retries", task.retries, job["retry_count"])
            expect(f"{where} retry_delay", task.retry_delay.total_seconds(), job["retry_pause_sec"])
            expect(f"{where} execution_timeout", task.execution_timeout.total_seconds(), job["execution_timeout_sec"])
            expect(f"{where} start_date", task.start_date.strftime("%Y-%m-%d %H:%M:%S"), wf["start_date"])
            expect(f"{where} depends_on_past", task.depends_on_past, wf["depends_on_past"])
            command = render(task, when, when)
            expect(f"{where} command", command[:4], [command[0], "run", "--job", f"{wf['workflow_id']}.{job['id']}"])
            command[0] = binary
            if wf["workflow_id"] in heavy:
                command.append("--dry-run")
            # The logging the image sets (BIGFLOW_LOG_FORMAT=json), at info level.
            env = {"BIGFLOW_LOG": "info", "BIGFLOW_LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
            env.update({k: v for k, v in os.environ.items() if k in ("HOME", "BIGFLOW_CACHE", "JAVA_HOME")})
            # In a directory of this check's own: jobs may write local data.
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=os.path.dirname(os.path.abspath(report_path)))
            report["runs"].append(
                {"workflow": wf["workflow_id"], "task_id": task.task_id, "argv": command[1:], "code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
            )
    # Airflow 3 runs triggered without a logical date fall back to run_after.
    if airflow_version.startswith("3."):
        any_task = next(iter(bag.dags.values())).tasks[0]
        argv = render(any_task, None, when.add(hours=1))
        expect("runtime without a logical date", argv[argv.index("--runtime") + 1], when.add(hours=1).strftime("%Y-%m-%d %H:%M:%S"))
    with open(report_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:7])
