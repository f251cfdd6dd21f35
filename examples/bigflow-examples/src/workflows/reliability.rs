//! Retries and timeouts, as Airflow applies them and `run --retries` can too.

use std::time::Duration;

use bigflow::prelude::*;

/// `flaky` fails its first attempt (succeeds with `--retries`);
/// `too_slow` runs a shell that sleeps past its 1 s timeout; the shell and
/// its `sleep` are killed.
pub fn workflow() -> WorkflowBuilder {
    let flaky = job("flaky", |ctx| {
        if ctx.attempt == 1 {
            bigflow::anyhow::bail!("transient failure on attempt 1");
        }
        println!("flaky succeeded on attempt {}", ctx.attempt);
        Ok(())
    })
    .with_retry_count(2)
    .with_retry_pause(Duration::from_millis(100));
    let too_slow = CommandJob::new("too_slow", "sh")
        .args(["-c", "sleep 314; echo never printed"])
        .with_retry_count(0)
        .with_execution_timeout(Duration::from_secs(1));
    Workflow::builder("reliability_workflow")
        .depends_on_past(false)
        .job(flaky)
        .job(too_slow)
}
