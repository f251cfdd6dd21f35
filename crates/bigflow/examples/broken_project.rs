//! A project binary with one deliberately broken definition, chosen by the
//! `BROKEN` environment variable; the CLI tests use it to check that each
//! mistake gets one clear message and exit code 2. `BROKEN=slow` is a valid
//! workflow whose job runs an external program for minutes, for the
//! interrupt test.

use bigflow::prelude::*;

fn ok() -> JobRef {
    JobRef::new(job("ok", |_| Ok(())))
}

fn main() -> std::process::ExitCode {
    let j = |id: &str| JobRef::new(job(id, |_| Ok(())));
    let project = bigflow::project!();
    let project = match std::env::var("BROKEN").as_deref() {
        Ok("cycle") => {
            let (a, b, c) = (j("a"), j("b"), j("c"));
            project.workflow(Workflow::builder("cyclic").graph([
                (&a, vec![&b]),
                (&b, vec![&c]),
                (&c, vec![&a]),
            ]))
        }
        Ok("duplicate_job") => project.workflow(Workflow::builder("dup").jobs([j("a"), j("a")])),
        Ok("duplicate_workflow") => project
            .workflow(Workflow::builder("same").jobs([ok()]))
            .workflow(Workflow::builder("same").jobs([ok()])),
        Ok("slow") => {
            let after = j("after");
            let slow = JobRef::new(CommandJob::new("slow", "sh").args(["-c", "sleep 271828"]));
            project.workflow(Workflow::builder("wf").graph([(&slow, vec![&after])]))
        }
        Ok("bad_id") => project.workflow(Workflow::builder("wf").jobs([j("load-data")])),
        Ok("unknown_dependency") => {
            project.workflow(Workflow::builder("wf").job(ok()).edge("ok", "missing"))
        }
        Ok("bad_cron") => project.workflow(
            Workflow::builder("wf")
                .schedule_interval("0 25 * * *")
                .jobs([ok()]),
        ),
        Ok("config_cycle") => project.workflow(
            Workflow::builder("wf")
                .config(Config::new("dev", [("a", "{b}"), ("b", "{a}")]))
                .jobs([ok()]),
        ),
        Ok("config_missing_key") => project.workflow(
            Workflow::builder("wf")
                .config(Config::new("dev", [("bucket", "{project}-bucket")]))
                .jobs([ok()]),
        ),
        Ok("failing_job") => project.workflow(Workflow::builder("wf").jobs([job("fails", |_| {
            bigflow::anyhow::bail!("no input for this runtime")
        })])),
        _ => project.workflow(Workflow::builder("wf").jobs([ok()])),
    };
    project.main()
}
