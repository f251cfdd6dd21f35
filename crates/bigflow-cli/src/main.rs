//! `bigflow`: the tool that starts, runs, versions and releases BigFlow projects.

fn main() -> std::process::ExitCode {
    bigflow_cli::main()
}
