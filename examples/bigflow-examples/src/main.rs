//! The example project's binary: every workflow of `bigflow_examples`.

use bigflow::ProjectMain;

fn main() -> std::process::ExitCode {
    bigflow_examples::project().main()
}
