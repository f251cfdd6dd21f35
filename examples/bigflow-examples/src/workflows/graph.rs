//! A graph workflow: `job1 → job2, job3 → job4`.
//!
//! Each job prints when it starts and ends, so a parallel run
//! (`--parallelism 2`) visibly overlaps `job2` and `job3`.

use std::time::Duration;

use bigflow::prelude::*;

fn timed_job(id: &'static str, work: Duration) -> JobRef {
    JobRef::new(job(id, move |ctx| {
        println!(
            "{id} started at {}",
            chrono::Local::now().format("%H:%M:%S%.3f")
        );
        ctx.sleep(work)?;
        println!(
            "{id} finished at {}",
            chrono::Local::now().format("%H:%M:%S%.3f")
        );
        Ok(())
    }))
}

/// BigFlow's graph example: `{job1: [job2, job3], job2: [job4], job3: [job4]}`.
pub fn workflow() -> WorkflowBuilder {
    let job1 = timed_job("job1", Duration::from_millis(50));
    let job2 = timed_job("job2", Duration::from_millis(500));
    let job3 = timed_job("job3", Duration::from_millis(500));
    let job4 = timed_job("job4", Duration::from_millis(50));
    Workflow::builder("graph_workflow").graph([
        (&job1, vec![&job2, &job3]),
        (&job2, vec![&job4]),
        (&job3, vec![&job4]),
    ])
}
