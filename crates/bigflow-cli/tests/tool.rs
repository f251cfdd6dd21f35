//! The `bigflow` tool end to end: start-project → build → run, versions from
//! git tags, release to a real (bare) origin, and bad input.

mod common;

use std::path::Path;
use std::process::Command as Std;

use assert_cmd::Command;
use common::*;

fn tool() -> Command {
    let mut cmd = Command::cargo_bin("bigflow").unwrap();
    cmd.env("BIGFLOW_LOG", "warn").env_remove("bf_env");
    cmd
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Std::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The README's way: `bigflow start-project NAME` with no flags, then
/// `bigflow run` inside it, offline (only the registry cache the suite has).
#[test]
fn started_project_builds_tests_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let bigflow = workspace_root()
        .join("crates/bigflow")
        .canonicalize()
        .unwrap();
    let out = stdout_of(
        tool()
            .args(["start-project", "demo"])
            .current_dir(tmp.path()),
    );
    assert!(out.starts_with("Created BigFlow project demo in "), "{out}");
    assert!(
        out.contains(&format!(
            "It depends on the bigflow crate at {} (the checkout this tool was built from",
            bigflow.display()
        )),
        "{out}"
    );
    let project = tmp.path().join("demo");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("bigflow = {{ path = \"{}\"", bigflow.display())),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!(
            "[patch.crates-io]\napache-spark-connect-proto = {{ path = \"{}\" }}",
            bigflow.with_file_name("spark-connect-proto").display()
        )),
        "{manifest}"
    );
    for file in [
        "Cargo.toml",
        "bigflow.toml",
        "README.md",
        "src/main.rs",
        "src/workflows/hello_world.rs",
        "src/workflows/internationalports.rs",
        "tests/hello_world.rs",
        "resources/README.md",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    // The starter's default features leave the engines out: hello_world first.
    let target = target_dir();
    let run = stdout_of(
        tool()
            .args([
                "run",
                "--workflow",
                "hello_world",
                "--runtime",
                "2020-08-01 10:00:00",
            ])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true"),
    );
    assert_eq!(run, "Hello world on 2020-08-01 10:00:00!\nGoodbye!\n");
    // The BigQuery example needs its feature, and says so.
    let gated = tool()
        .args(["run", "--workflow", "internationalports"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert_eq!(gated.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&gated.stderr).contains(
            "error: workflow 'internationalports' is not in this build: it needs the project's Cargo feature `bigquery`; enable it for one command with BIGFLOW_FEATURES=bigquery"
        ),
        "{}",
        String::from_utf8_lossy(&gated.stderr)
    );
    stdout_of(
        tool()
            .args(["run", "--workflow", "internationalports"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true")
            .env("BIGFLOW_FEATURES", "bigquery")
            .env_remove("BIGFLOW_WAREHOUSE"),
    );
    let polish = stdout_of(
        tool()
            .args(["warehouse", "query", "--format", "csv"])
            .arg(
                "SELECT port_name FROM `my-project-dev.internationalports.polish_ports` ORDER BY 1",
            )
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true")
            .env("BIGFLOW_FEATURES", "bigquery")
            .env_remove("BIGFLOW_WAREHOUSE"),
    );
    assert_eq!(polish, "port_name\nGDANSK\nGDYNIA\n");
    let list = stdout_of(
        tool()
            .arg("list")
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true"),
    );
    assert_eq!(
        list,
        "hello_world (@daily)\n  hello_world\n  say_goodbye <- hello_world\npi_estimator_pyspark (@daily)\n  estimate_pi\nwordcount (@daily)\n  count_words\ninternationalports (not in this build: needs feature `bigquery`)\npi_estimator (not in this build: needs feature `spark-connect`)\n"
    );
    let test = Std::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["test", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "cargo test in the new project: {}",
        String::from_utf8_lossy(&test.stderr)
    );
    // backfill is forwarded like run; its history lives in the project.
    let backfill = tool()
        .args([
            "backfill",
            "--workflow",
            "hello_world",
            "--start-time",
            "2020-01-30",
            "--end-time",
            "2020-02-01",
        ])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert!(
        backfill.status.success(),
        "{}",
        String::from_utf8_lossy(&backfill.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&backfill.stdout),
        "Hello world on 2020-01-30 00:00:00!\nGoodbye!\nHello world on 2020-01-31 00:00:00!\nGoodbye!\nHello world on 2020-02-01 00:00:00!\nGoodbye!\n"
    );
    assert!(project.join(".bigflow/runs/hello_world.jsonl").is_file());
    // A failing job's exit code comes through the tool.
    let bad = tool()
        .args(["run", "--workflow", "nope"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("error: unknown workflow 'nope'; known workflows: hello_world")
    );
}

#[test]
fn start_project_rejects_bad_names_and_existing_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tool()
        .args(["start-project", "9lives", "--path"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!("bad_project_name", String::from_utf8_lossy(&out.stderr));
    // Names that would generate code that cannot compile, or an invalid image name.
    let mut refusals = String::new();
    for name in [
        "fn",
        "self",
        "crate",
        "std",
        "core",
        "test",
        "bigflow",
        "My_Project",
    ] {
        let out = tool()
            .args(["start-project", name, "--path"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        refusals.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    insta::assert_snapshot!("refused_project_names", refusals);
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing was created"
    );
    std::fs::create_dir_all(tmp.path().join("taken/src")).unwrap();
    let out = tool()
        .args(["start-project", "taken", "--path"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
}

#[test]
fn run_outside_a_project_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tool()
        .args(["run", "--workflow", "x"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no bigflow.toml in "));
}

#[test]
fn versions_follow_git_tags_and_release_bumps_minor() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin.git");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(
        tmp.path(),
        &["init", "-q", "--bare", origin.to_str().unwrap()],
    );
    git(&repo, &["init", "-q"]);
    git(
        &repo,
        &["remote", "add", "origin", origin.to_str().unwrap()],
    );
    std::fs::write(repo.join("a.txt"), "1").unwrap();
    git(&repo, &["add", "a.txt"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);

    let pv = |args: &[&str]| {
        stdout_of(tool().args(args).current_dir(&repo))
            .trim()
            .to_string()
    };
    assert_eq!(pv(&["project-version"]), format!("0.dev1-g{}", &head[..8]));

    // Uncommitted changes: a marker derived from the changed tree, stable across calls.
    std::fs::write(repo.join("a.txt"), "2").unwrap();
    let dirty = pv(&["pv"]);
    assert!(
        dirty.starts_with(&format!("0.dev1-g{}-t", &head[..8])),
        "{dirty}"
    );
    assert_eq!(pv(&["pv"]), dirty);
    git(&repo, &["checkout", "-q", "a.txt"]);

    // release: no tags yet -> 0.1, pushed to origin.
    assert_eq!(pv(&["release"]), "0.1");
    assert_eq!(git(&origin, &["tag"]), "0.1");
    assert_eq!(pv(&["pv"]), "0.1");

    std::fs::write(repo.join("a.txt"), "3").unwrap();
    git(&repo, &["commit", "-q", "-am", "second"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let snapshot = pv(&["pv"]);
    assert_eq!(snapshot, format!("0.1.dev1-g{}", &head[..8]));
    assert!(
        snapshot
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "a Docker tag"
    );

    git(&repo, &["tag", "v1.11.3"]);
    assert_eq!(pv(&["pv"]), "1.11.3");
    assert_eq!(pv(&["release"]), "v1.12");
    assert_eq!(
        git(&origin, &["tag", "--sort=version:refname"]),
        "0.1\nv1.12"
    );
}

#[test]
fn project_version_outside_git_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tool()
        .arg("pv")
        .current_dir(tmp.path())
        .env("GIT_CEILING_DIRECTORIES", tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not inside a git repository"));
}

#[test]
fn help_lists_every_command() {
    let out = stdout_of(tool().arg("--help"));
    insta::assert_snapshot!("help", out);
}

fn output_of(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn dir_listing(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn build_dags_is_deterministic_and_bad_input_leaves_dags_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let bigflow = workspace_root().join("crates/bigflow");
    stdout_of(
        tool()
            .args(["start-project", "dagdemo", "--path"])
            .arg(tmp.path())
            .arg("--bigflow-path")
            .arg(&bigflow),
    );
    let project = tmp.path().join("dagdemo");
    git(&project, &["init", "-q"]);
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-q", "-m", "start"]);
    let target = target_dir();
    // Without the starter's default engine features (DataFusion): DAG files
    // do not depend on them.
    let build = |extra: &[&str]| {
        output_of(
            tool()
                .args(["build-dags", "--start-time", "2020-08-01 10:00:00"])
                .args(extra)
                .current_dir(&project)
                .env("BIGFLOW_NO_DEFAULT_FEATURES", "1")
                .env("CARGO_TARGET_DIR", &target),
        )
    };

    let (code, out, err) = build(&[]);
    assert_eq!(code, 0, "{err}");
    let dags = project.join(".dags");
    let first = dir_listing(&dags);
    let head = git(&project, &["rev-parse", "HEAD"]);
    let dag_file = format!(
        "hello_world__v0_dev1_g{}__2020_08_01_10_00_00_dag.py",
        &head[..8]
    );
    let pi_file = format!(
        "pi_estimator_pyspark__v0_dev1_g{}__2020_08_01_10_00_00_dag.py",
        &head[..8]
    );
    let wordcount_file = format!(
        "wordcount__v0_dev1_g{}__2020_08_01_10_00_00_dag.py",
        &head[..8]
    );
    assert_eq!(
        first.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            ".bigflow-dags",
            dag_file.as_str(),
            "image_version.txt",
            pi_file.as_str(),
            wordcount_file.as_str()
        ]
    );
    assert!(
        out.ends_with(&format!(
            ".dags/{dag_file}\n{}\n{}\n{}\n",
            dags.join(&pi_file).display(),
            dags.join(&wordcount_file).display(),
            dags.join("image_version.txt").display()
        )),
        "{out}"
    );
    assert_eq!(
        first[2].1,
        format!(
            "europe-west1-docker.pkg.dev/dagdemo-dev/dagdemo/dagdemo:0.dev1-g{}\n",
            &head[..8]
        )
    );
    assert_eq!(build(&[]).0, 0);
    assert_eq!(
        dir_listing(&dags),
        first,
        "same inputs, byte-identical files"
    );

    let toml_path = project.join("bigflow.toml");
    let original = std::fs::read_to_string(&toml_path).unwrap();
    let bad_cases: Vec<(String, Option<&str>, &str)> = vec![
        (
            original.replace("docker_repository = ", "# docker_repository = "),
            None,
            "has no docker_repository for environment 'dev'",
        ),
        (
            original.replace(
                "europe-west1-docker.pkg.dev/{gcp_project_id}",
                "Europe West/{{ x }}",
            ),
            None,
            "is not valid: a repository is HOST[:PORT]/PATH",
        ),
        (
            original.clone(),
            Some("--workflow=nope"),
            "unknown workflow 'nope'; known workflows: hello_world",
        ),
        (
            original.clone(),
            Some("--config=stage"),
            "unknown config environment 'stage'; known environments: dev, prod",
        ),
        // An output directory bigflow did not make is refused before the build.
        (
            original.clone(),
            Some("--dags-dir=src"),
            "refusing to replace src with DAG files: it holds files bigflow did not make ('lib.rs', 'main.rs', 'workflows')",
        ),
    ];
    for (toml, flag, message) in bad_cases {
        std::fs::write(&toml_path, toml).unwrap();
        let (code, _, err) = build(flag.as_slice());
        assert_eq!(code, 2, "{message}: {err}");
        assert!(err.contains(message), "expected {message:?} in {err:?}");
        assert_eq!(
            dir_listing(&dags),
            first,
            ".dags untouched after: {message}"
        );
    }
    assert!(
        project.join("src/lib.rs").is_file(),
        "src survived --dags-dir src"
    );
    std::fs::write(&toml_path, &original).unwrap();

    // A definition error in the project: the project binary's message and exit code come through.
    let lib = project.join("src/lib.rs");
    let code_before = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        code_before.replace(
            ".workflow(workflows::hello_world::workflow())",
            ".workflow(workflows::hello_world::workflow()).workflow(bigflow::Workflow::builder(\"empty\"))",
        ),
    )
    .unwrap();
    let (code, _, err) = build(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error: invalid workflow definition: workflow 'empty' has no jobs"),
        "{err}"
    );
    assert_eq!(dir_listing(&dags), first);
    let leftovers: Vec<_> = std::fs::read_dir(&project)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn build_package_writes_junit_and_refuses_failing_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let bigflow = workspace_root().join("crates/bigflow");
    stdout_of(
        tool()
            .args(["start-project", "pkgdemo", "--path"])
            .arg(tmp.path())
            .arg("--bigflow-path")
            .arg(&bigflow),
    );
    let project = tmp.path().join("pkgdemo");
    // A release build without the starter's engine features (DataFusion in
    // release would cost CI many minutes; packaging does not depend on it).
    let target = target_dir();
    let (code, out, err) = output_of(
        tool()
            .arg("build-package")
            .current_dir(&project)
            .env("BIGFLOW_NO_DEFAULT_FEATURES", "1")
            .env("CARGO_TARGET_DIR", &target),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.trim_end().ends_with("release/pkgdemo"),
        "prints the release binary: {out}"
    );
    let report = std::fs::read_to_string(project.join("build/junit-reports/junit.xml")).unwrap();
    assert!(
        report.contains("<testcase name=\"hello_world_runs\" classname=\"tests/hello_world.rs\"/>"),
        "{report}"
    );

    std::fs::write(
        project.join("tests/broken.rs"),
        "#[test]\nfn always_fails() {\n    assert_eq!(1 + 1, 3, \"arithmetic\");\n}\n",
    )
    .unwrap();
    let (code, _, err) = output_of(
        tool()
            .arg("build-package")
            .current_dir(&project)
            .env("BIGFLOW_NO_DEFAULT_FEATURES", "1")
            .env("CARGO_TARGET_DIR", &target),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("error: tests failed (always_fails); nothing was packaged."),
        "{err}"
    );
    let report = std::fs::read_to_string(project.join("build/junit-reports/junit.xml")).unwrap();
    assert!(report.contains("<testcase name=\"always_fails\" classname=\"tests/broken.rs\">\n      <failure message=\"test failed\">"), "{report}");
    assert!(report.contains("arithmetic"), "{report}");
}

#[test]
fn logs_links_each_workflow_to_cloud_logging() {
    let (code, out, err) = tool_in_examples(&["logs", "-w", "hello_world"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "hello_world: https://console.cloud.google.com/logs/query;query=labels.workflow_id%3D%22hello_world%22?project=bigflow-examples-dev\n"
    );
    let (code, out, err) = tool_in_examples(&["logs", "--config", "prod"], &[]);
    assert_eq!(code, 0, "{err}");
    // The example's workflows without its engine features (see tool_in_examples).
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(out.contains("graph_workflow: https://console.cloud.google.com/logs/query;query=labels.workflow_id%3D%22graph_workflow%22?project=bigflow-examples-prod"), "{out}");
}
