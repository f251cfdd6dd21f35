//! The example project's binary: every workflow of `bigflow_examples`.

use bigflow::ProjectMain;

/// mimalloc: faster than the system allocator for a pipeline's many small values.
#[global_allocator]
static ALLOCATOR: bigflow::MiMalloc = bigflow::MiMalloc;

fn main() -> std::process::ExitCode {
    bigflow_examples::project().main()
}
