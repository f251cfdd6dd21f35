//! The tutorial's first workflow: two jobs, run one after the other.

use bigflow::prelude::*;

/// A job written as a type, like BigFlow's `class HelloWorldJob`.
pub struct HelloWorldJob;

impl Job for HelloWorldJob {
    fn id(&self) -> &str {
        "hello_world"
    }

    fn execute(&self, ctx: &JobContext) -> JobResult {
        println!("Hello world on {}!", ctx.runtime_str);
        Ok(())
    }
}

/// `hello_world` then `say_goodbye`.
pub fn workflow() -> WorkflowBuilder {
    let say_goodbye = job("say_goodbye", |_ctx| {
        println!("Goodbye!");
        Ok(())
    });
    Workflow::builder("hello_world").jobs([JobRef::new(HelloWorldJob), JobRef::new(say_goodbye)])
}
