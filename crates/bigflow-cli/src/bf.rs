//! `bf`: a short alias of the `bigflow` tool.

fn main() -> std::process::ExitCode {
    bigflow_cli::main()
}
