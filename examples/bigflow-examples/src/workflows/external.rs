//! Any program can be a job: runtime and config are passed in.

use bigflow::prelude::*;

/// Runs a shell command with the runtime as an argument and in the environment.
pub fn workflow() -> WorkflowBuilder {
    Workflow::builder("external_workflow").jobs([CommandJob::new("shell_job", "sh")
        .arg("-c")
        .arg("echo \"external program: runtime=$1 env=$BIGFLOW_ENV\"")
        .arg("sh")
        .arg("{runtime}")])
}
