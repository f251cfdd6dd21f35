//! `BeamJob` as a BigFlow job: arguments, options, timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bigflow_beam::prelude::*;
use bigflow_core::{Job, JobContext, ResolvedConfig, WithSettings, parse_runtime};
use serde::{Deserialize, Serialize};

fn ctx() -> JobContext {
    JobContext::new(
        parse_runtime("2020-01-02").unwrap(),
        "wf",
        "beam",
        ResolvedConfig::empty("dev"),
    )
}

#[test]
fn entry_point_gets_pipeline_context_and_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("out").display().to_string();
    let mut args = JobArgs::new();
    args.insert("prefix".into(), prefix.clone().into());
    args.insert("n".into(), 5.into());
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    let job = BeamJob::new("numbers", move |p, ctx, args| {
        *seen2.lock().unwrap() = ctx.runtime_str.clone();
        let n = args["n"].as_i64().unwrap();
        let runtime = ctx.runtime_str.clone();
        p.create("Xs", (1..=n).collect())
            .map("Fmt", move |x| format!("{runtime} {x}"))
            .write_text("Write", WriteText::to(args["prefix"].as_str().unwrap()));
        Ok(())
    })
    .test_pipeline()
    .args(args);
    job.execute(&ctx()).unwrap();
    assert_eq!(*seen.lock().unwrap(), "2020-01-02 00:00:00");
    let text = std::fs::read_to_string(format!("{prefix}-00000-of-00001")).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.starts_with("2020-01-02 00:00:00 1\n"), "{text}");
}

#[test]
fn entry_point_errors_fail_the_job() {
    let job = BeamJob::new("broken", |_, _, _| anyhow::bail!("no input configured"));
    let e = format!("{:#}", job.execute(&ctx()).unwrap_err());
    assert!(
        e.contains("job broken: building the pipeline failed: no input configured"),
        "{e}"
    );
}

#[derive(Clone, Serialize, Deserialize)]
struct Sleepy;

impl DoFn for Sleepy {
    type In = i64;
    type Out = i64;
    fn process(&mut self, x: &i64, ctx: &mut bigflow_beam::Context<'_, i64>) -> anyhow::Result<()> {
        std::thread::sleep(Duration::from_millis(5));
        ctx.emit(*x);
        Ok(())
    }
}

#[test]
fn execution_timeout_cancels_the_pipeline_and_fails_the_job() {
    let job = BeamJob::new("slow", |p, _, _| {
        p.create("Xs", (0..1_000_000i64).collect())
            .par_do("Sleep", Sleepy);
        Ok(())
    })
    .with_execution_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let e = job.execute(&ctx()).unwrap_err().to_string();
    assert!(
        e.contains("job slow: the Beam pipeline failed") && e.contains("deadline passed"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
