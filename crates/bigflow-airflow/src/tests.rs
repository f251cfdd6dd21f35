//! Rendering, determinism and injection tests of the DAG generator.

use std::process::Command;

use bigflow_core::manifest::{JobManifest, WorkflowManifest};
use bigflow_core::runtime::parse_runtime;

use super::*;

const NASTY: &[&str] = &[
    "q\"uote'",
    "back\\slash",
    "new\nline",
    "{{ var.value.secret }}",
    "zażółć 🚀",
    "\"); import os; os.system(\"id\") #",
    "",
];

fn job(id: &str, parents: &[&str]) -> JobManifest {
    JobManifest {
        id: id.into(),
        depends_on: parents.iter().map(|p| p.to_string()).collect(),
        retry_count: 3,
        retry_pause_sec: 60.0,
        execution_timeout_sec: 10800.0,
        environments: Vec::new(),
    }
}

fn workflow() -> WorkflowManifest {
    WorkflowManifest {
        workflow_id: "graph_workflow".into(),
        schedule_interval: "@daily".into(),
        start_time_factory: "daily_start_time".into(),
        start_date: Some("2020-07-31 00:00:00".into()),
        depends_on_past: true,
        secrets: vec!["api_token".into()],
        env_variable: "env".into(),
        config_envs: vec![],
        jobs: vec![
            job("job1", &[]),
            job("job2", &["job1"]),
            job("job3", &["job1"]),
            job("job4", &["job2", "job3"]),
        ],
    }
}

fn settings() -> DagSettings {
    DagSettings {
        image: "europe-west1-docker.pkg.dev/p/r/demo:0.1.dev2-gabcdef12".into(),
        version: "0.1.dev2-gabcdef12".into(),
        build_start: parse_runtime("2020-08-01 10:00:00").unwrap(),
        binary_in_image: "/app/bin/demo".into(),
        namespace: COMPOSER_NAMESPACE.into(),
    }
}

#[test]
fn renders_a_graph_workflow() {
    let dag = render_dag(&workflow(), &settings()).unwrap();
    assert_eq!(
        dag.dag_id,
        "graph_workflow__v0_1_dev2_gabcdef12__2020_08_01_10_00_00"
    );
    assert_eq!(
        dag.file_name,
        "graph_workflow__v0_1_dev2_gabcdef12__2020_08_01_10_00_00_dag.py"
    );
    assert!(dag.source.is_ascii());
    insta::assert_snapshot!("graph_workflow_dag", dag.source);
}

#[test]
fn output_is_deterministic() {
    assert_eq!(
        render_dag(&workflow(), &settings()).unwrap(),
        render_dag(&workflow(), &settings()).unwrap()
    );
}

#[test]
fn bad_inputs_are_rejected_with_the_field_named() {
    let mut wf = workflow();
    wf.jobs.clear();
    assert_eq!(
        render_dag(&wf, &settings()).unwrap_err().to_string(),
        "workflow 'graph_workflow' has no jobs; a DAG needs at least one task"
    );
    let mut wf = workflow();
    wf.jobs = vec![job("Load", &[]), job("load", &[])];
    assert!(
        render_dag(&wf, &settings())
            .unwrap_err()
            .to_string()
            .contains("jobs 'Load' and 'load' both become task 'load'")
    );
    let mut wf = workflow();
    wf.schedule_interval = "@fortnightly".into();
    assert!(matches!(
        render_dag(&wf, &settings()),
        Err(DagError::BadSchedule { .. })
    ));
    let mut wf = workflow();
    wf.jobs[1].depends_on = vec!["ghost".into()];
    assert!(matches!(
        render_dag(&wf, &settings()),
        Err(DagError::UnknownParent { .. })
    ));
    assert!(image_reference("Europe/Upper", "1.0").is_err());
    assert_eq!(
        image_reference("localhost:5000/demo", "1.0").unwrap(),
        "localhost:5000/demo:1.0"
    );
}

/// Module-level constants of a Python file, evaluated by Python itself.
fn python_constants(source: &str) -> serde_json::Value {
    let dir = tempfile_dir();
    let path = dir.join("dag.py");
    std::fs::write(&path, source).unwrap();
    let script = r#"
import ast, json, sys
tree = ast.parse(open(sys.argv[1], encoding="ascii").read())
out = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pass
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 is needed by this test");
    assert!(
        out.status.success(),
        "python rejected the file: {}\n{source}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bigflow-airflow-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_field_is_escaped_or_rejected() {
    for nasty in NASTY {
        // Identifier fields: rejected.
        let mut cases: Vec<(&str, WorkflowManifest)> = Vec::new();
        let mut wf = workflow();
        wf.workflow_id = nasty.to_string();
        cases.push(("workflow id", wf));
        let mut wf = workflow();
        wf.jobs[0].id = nasty.to_string();
        cases.push(("job id", wf));
        let mut wf = workflow();
        wf.env_variable = nasty.to_string();
        cases.push(("env_variable", wf));
        let mut wf = workflow();
        wf.secrets = vec![nasty.to_string()];
        cases.push(("secret", wf));
        let mut wf = workflow();
        wf.schedule_interval = nasty.to_string();
        cases.push(("schedule", wf));
        let mut wf = workflow();
        wf.start_date = Some(nasty.to_string());
        cases.push(("start date", wf));
        let mut wf = workflow();
        wf.jobs[1].depends_on = vec![nasty.to_string()];
        cases.push(("dependency", wf));
        for (field, wf) in cases {
            assert!(
                render_dag(&wf, &settings()).is_err(),
                "{field} = {nasty:?} must be rejected"
            );
        }
        // Image and version: rejected.
        assert!(
            image_reference(nasty, "1.0").is_err(),
            "repository {nasty:?}"
        );
        assert!(
            image_reference("gcr.io/p/x", nasty).is_err(),
            "version {nasty:?}"
        );
        let mut s = settings();
        s.image = format!("gcr.io/p/x:{nasty}");
        assert!(render_dag(&workflow(), &s).is_err(), "image {nasty:?}");

        // Free-text fields: escaped, and Python reads back exactly the value.
        let mut s = settings();
        s.binary_in_image = nasty.to_string();
        s.namespace = format!("ns-{nasty}");
        let dag = render_dag(&workflow(), &s).unwrap();
        assert!(dag.source.is_ascii());
        let constants = python_constants(&dag.source);
        assert_eq!(constants["COMMAND"][0], *nasty);
        assert_eq!(constants["NAMESPACE"], format!("ns-{nasty}"));
        assert_eq!(constants["RUNTIME"], RUNTIME_TEMPLATE);
    }
}
