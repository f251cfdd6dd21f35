//! Daily and hourly workflows: schedules and start-time factories.

use bigflow::prelude::*;

/// Runs every day; the first runtime is midnight of the day before the DAG is built.
pub fn daily() -> WorkflowBuilder {
    Workflow::builder("daily_workflow")
        .schedule_interval("@daily")
        .start_time_factory(StartTimeFactory::daily())
        .jobs([job("daily_job", |ctx| {
            println!("Daily job for {}", ctx.runtime.format("%Y-%m-%d"));
            Ok(())
        })])
}

/// Runs at minute 0 of every hour, without waiting for the previous run.
pub fn hourly() -> WorkflowBuilder {
    Workflow::builder("hourly_workflow")
        .schedule_interval("0 * * * *")
        .start_time_factory(StartTimeFactory::hourly())
        .depends_on_past(false)
        .jobs([job("hourly_job", |ctx| {
            println!("Hourly job for {}", ctx.runtime_str);
            Ok(())
        })])
}
