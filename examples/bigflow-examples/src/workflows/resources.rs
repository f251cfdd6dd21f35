//! Reading a file of the project's `resources/` directory.

use bigflow::prelude::*;

/// Prints `resources/example.txt`.
pub fn workflow() -> WorkflowBuilder {
    Workflow::builder("resources_workflow").jobs([job("print_resource", |ctx| {
        let path = ctx.resource("example.txt")?;
        print!("{}", std::fs::read_to_string(&path)?);
        Ok(())
    })])
}
