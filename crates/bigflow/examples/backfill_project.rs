//! A project binary for the backfill tests: an hourly and a daily workflow
//! (both depend_on_past, BigFlow's default) and a daily one that does not.
//! Each job prints its runtime and fails when that runtime is listed in the
//! comma-separated `FAIL_AT` environment variable.

use bigflow::prelude::*;

fn job_for(id: &'static str) -> JobRef {
    JobRef::new(job(id, move |ctx| {
        let fail_at = std::env::var("FAIL_AT").unwrap_or_default();
        if fail_at.split(',').any(|t| t == ctx.runtime_str) {
            anyhow::bail!("{id} was told to fail at {}", ctx.runtime_str);
        }
        println!("{id} {}", ctx.runtime_str);
        Ok(())
    }))
}

fn main() -> std::process::ExitCode {
    bigflow::project!()
        .workflow(
            Workflow::builder("hourly")
                .schedule_interval("@hourly")
                .jobs([job_for("load")]),
        )
        .workflow(
            Workflow::builder("daily")
                .schedule_interval("@daily")
                .jobs([job_for("extract"), job_for("transform")]),
        )
        .workflow(
            Workflow::builder("independent")
                .schedule_interval("@daily")
                .depends_on_past(false)
                .jobs([job_for("report")]),
        )
        .main()
}
