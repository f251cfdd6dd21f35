//! The project binary's command line: `run`, `backfill`, `list`, `manifest`, `config`.
//!
//! Flags mirror BigFlow's (`run --workflow ID | --job WF.JOB [--runtime R]
//! [--config ENV]`) plus the local runner's extras (`--parallelism`,
//! `--retries`, `--dry-run`). Exit codes: 0 success, 1 a job failed, 2 usage
//! or configuration error. Job output goes to stdout untouched; logs and the
//! run summary go to stderr.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use bigflow_core::config::ResolvedConfig;
use bigflow_core::context::CancelToken;
use bigflow_core::executor::{RunOptions, run_workflow};
use bigflow_core::runtime::{format_runtime, now, parse_runtime};
use bigflow_core::{Project, Workflow};

use crate::logging::{LogFormat, init_logging};

/// Exit code of a run where a job failed.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Exit code of a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    about = "Run and inspect this project's BigFlow workflows",
    disable_version_flag = true
)]
struct Cli {
    /// Log format: human-readable text or Cloud Logging JSON.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BIGFLOW_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log level filter (e.g. info, debug, bigflow=debug).
    #[arg(long, global = true, default_value = "info", env = "BIGFLOW_LOG")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a workflow or a single job for a runtime.
    Run(RunArgs),
    /// Run a workflow for every runtime its schedule produces in a range, oldest first.
    Backfill(BackfillArgs),
    /// List workflows and their jobs.
    List,
    /// Print the machine-readable manifest (JSON) of every workflow.
    Manifest {
        /// Compute each workflow's start_date from this time (YYYY-MM-DD [HH:MM:SS]).
        #[arg(long)]
        start_time: Option<String>,
    },
    /// Print the resolved configuration of every environment.
    Config {
        /// Only this workflow's configuration.
        #[arg(long, short = 'w')]
        workflow: Option<String>,
    },
    /// Ad-hoc SQL on the project's local BigQuery warehouse.
    #[cfg(feature = "bigquery")]
    #[command(subcommand)]
    Warehouse(WarehouseCommand),
    /// Without the `bigquery` feature: says which feature `warehouse` needs.
    #[cfg(not(feature = "bigquery"))]
    #[command(hide = true)]
    Warehouse {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[cfg(feature = "bigquery")]
#[derive(Debug, Subcommand)]
enum WarehouseCommand {
    /// Run BigQuery SQL on the local warehouse and print the result.
    Query {
        /// The SQL (BigQuery dialect; tables as `project.dataset.table`).
        sql: String,
        /// Output format.
        #[arg(long, short = 'f', default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
        /// The warehouse directory (default: $BIGFLOW_WAREHOUSE, else .bigflow/warehouse).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Where bare table names live, as PROJECT.DATASET.
        #[arg(long)]
        dataset: Option<String>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The workflow to run.
    #[arg(
        long,
        short = 'w',
        conflicts_with = "job",
        required_unless_present = "job"
    )]
    workflow: Option<String>,
    /// One job to run, as WORKFLOW_ID.JOB_ID.
    #[arg(long, short = 'j')]
    job: Option<String>,
    /// The runtime: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD'; default now (local time).
    #[arg(long, short = 'r')]
    runtime: Option<String>,
    /// The configuration environment (default: $bf_env, then the config's default).
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// How many independent jobs may run at once (1 keeps BigFlow's order).
    #[arg(long, short = 'p', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,
    /// Retry failed jobs with their retry_count and retry_pause, as Airflow would.
    #[arg(long)]
    retries: bool,
    /// Print what would run, in order, and exit.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    /// The workflow to run.
    #[arg(long, short = 'w')]
    workflow: String,
    /// The range's first time: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' (included).
    #[arg(long, short = 's')]
    start_time: String,
    /// The range's last time: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD' (included).
    #[arg(long, short = 'e')]
    end_time: String,
    /// The configuration environment (default: $bf_env, then the config's default).
    #[arg(long, short = 'c')]
    config: Option<String>,
    /// How many independent jobs of one runtime may run at once.
    #[arg(long, short = 'p', default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: u16,
    /// Retry failed jobs with their retry_count and retry_pause, as Airflow would.
    #[arg(long)]
    retries: bool,
    /// List the runtimes (and which already succeeded) and exit.
    #[arg(long)]
    dry_run: bool,
    /// Run runtimes again even if the run history says they succeeded.
    #[arg(long)]
    rerun: bool,
}

/// A failure of a CLI command with its exit code.
#[derive(Debug)]
pub struct CliError {
    code: u8,
    message: String,
}

impl CliError {
    fn usage(message: impl ToString) -> Self {
        CliError {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }
}

/// Parses the process arguments and runs the command.
pub fn main(project: Project) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    run_with_os_args(project, &args)
}

/// Runs the command line `args` as the operating system passed them: an
/// argument that is not UTF-8 is a usage error naming it, never a panic.
pub fn run_with_os_args(project: Project, args: &[std::ffi::OsString]) -> ExitCode {
    match utf8_args(args) {
        Ok(args) => run_with_args(project, &args),
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// The arguments as UTF-8 text, or a usage error naming the first that is not.
fn utf8_args(args: &[std::ffi::OsString]) -> Result<Vec<String>, CliError> {
    args.iter()
        .enumerate()
        .map(|(n, arg)| {
            arg.to_str().map(str::to_string).ok_or_else(|| {
                CliError::usage(format!(
                    "argument {n} ('{}') is not valid UTF-8; names, runtimes and configs are text",
                    arg.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// Runs the command line `args` (the first is the program name).
pub fn run_with_args(project: Project, args: &[String]) -> ExitCode {
    #[cfg(feature = "beam")]
    if let Some(worker) = beam_worker::args(args) {
        return beam_worker::run(&project, worker);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    if let Err(e) = init_logging(cli.log_format, &cli.log_level) {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut stdout = std::io::stdout();
    let json = cli.log_format == LogFormat::Json;
    match execute(&project, cli.command, json, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = stdout.flush();
            if !e.message.is_empty() {
                if json {
                    // One structured entry, so Cloud Logging shows it as an error.
                    tracing::error!(exit_code = e.code, "{}", e.message);
                } else {
                    eprintln!("error: {}", e.message);
                }
            }
            ExitCode::from(e.code)
        }
    }
}

fn execute(
    project: &Project,
    command: Command,
    json_logs: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    project.validate().map_err(CliError::usage)?;
    match command {
        Command::Run(args) => run(project, args, json_logs, out),
        Command::Backfill(args) => backfill(project, args, json_logs, out),
        Command::List => {
            write_list(project, out).map_err(CliError::usage)?;
            Ok(())
        }
        Command::Manifest { start_time } => {
            let start = start_time
                .as_deref()
                .map(parse_runtime)
                .transpose()
                .map_err(CliError::usage)?;
            let manifest = project.manifest(start);
            let json = serde_json::to_string_pretty(&manifest).map_err(CliError::usage)?;
            writeln!(out, "{json}").map_err(CliError::usage)
        }
        #[cfg(feature = "bigquery")]
        Command::Warehouse(WarehouseCommand::Query {
            sql,
            format,
            dir,
            dataset,
        }) => {
            use bigflow_bigquery::{adhoc, format::Format};
            let format: Format = format.parse().map_err(CliError::usage)?;
            let dir = dir.unwrap_or_else(bigflow_bigquery::local::default_dir);
            let text =
                adhoc::query(&dir, &sql, dataset.as_deref(), format).map_err(|e| CliError {
                    code: if adhoc::is_input_error(&e) {
                        EXIT_USAGE
                    } else {
                        EXIT_JOB_FAILED
                    },
                    message: e.to_string(),
                })?;
            write!(out, "{text}").map_err(CliError::usage)
        }
        #[cfg(not(feature = "bigquery"))]
        Command::Warehouse { .. } => Err(CliError::usage(
            "this project binary was built without the `bigquery` feature, which `warehouse` needs; add it to the project's bigflow dependency (features = [\"bigquery\"]) or to bigflow.toml's [project] features",
        )),
        Command::Config { workflow } => {
            let workflows: Vec<&Workflow> = match &workflow {
                Some(id) => vec![project.find_workflow(id).map_err(CliError::usage)?],
                None => project.workflows().iter().collect(),
            };
            for wf in workflows {
                match project.config_for(wf) {
                    Some(config) => {
                        writeln!(out, "# workflow {}\n{}", wf.id(), config.pretty_print())
                    }
                    None => writeln!(out, "# workflow {}: no configuration\n", wf.id()),
                }
                .map_err(CliError::usage)?;
                write_engines(wf, out).map_err(CliError::usage)?;
            }
            Ok(())
        }
    }
}

/// The engine of each environment of jobs that carry their own configuration.
fn write_engines(wf: &Workflow, out: &mut dyn Write) -> std::io::Result<()> {
    let jobs: Vec<_> = wf
        .sequential_order()
        .filter_map(|j| Some((j.id(), j.job().environments()?)))
        .collect();
    if jobs.is_empty() {
        return Ok(());
    }
    writeln!(out, "engines of workflow {}:", wf.id())?;
    for (id, envs) in jobs {
        let shown: Vec<String> = envs
            .iter()
            .map(|e| format!("{}: {}", e.name, e.engine))
            .collect();
        writeln!(out, "    {id}  {}", shown.join(", "))?;
    }
    writeln!(out)
}

fn write_list(project: &Project, out: &mut dyn Write) -> std::io::Result<()> {
    for wf in project.workflows() {
        writeln!(out, "{} ({})", wf.id(), wf.schedule())?;
        for id in wf.job_ids() {
            let parents = wf.parents(id);
            if parents.is_empty() {
                writeln!(out, "  {id}")?;
            } else {
                writeln!(out, "  {id} <- {}", parents.join(", "))?;
            }
        }
    }
    for (id, feature) in project.feature_gated() {
        writeln!(out, "{id} (not in this build: needs feature `{feature}`)")?;
    }
    Ok(())
}

fn run(
    project: &Project,
    args: RunArgs,
    json_logs: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (workflow, job_id) = match (&args.workflow, &args.job) {
        (Some(wf), None) => (project.find_workflow(wf).map_err(CliError::usage)?, None),
        (None, Some(spec)) => {
            let (wf, job) = spec.split_once('.').filter(|(w, j)| !w.is_empty() && !j.is_empty() && !j.contains('.')).ok_or_else(|| {
                CliError::usage(format!("--job '{spec}' must be WORKFLOW_ID.JOB_ID, e.g. --job hello_world.say_goodbye"))
            })?;
            (
                project.find_job(wf, job).map_err(CliError::usage)?,
                Some(job),
            )
        }
        _ => {
            return Err(CliError::usage(
                "give either --workflow ID or --job WORKFLOW_ID.JOB_ID",
            ));
        }
    };
    let runtime = match &args.runtime {
        Some(r) => parse_runtime(r).map_err(CliError::usage)?,
        None => now(),
    };
    let config = resolve_config(project, workflow, args.config.as_deref())?;
    let selection: Option<Vec<&str>> = job_id.map(|j| vec![j]);
    check_job_environments(project, workflow, selection.as_deref(), &config)?;
    let options = RunOptions {
        parallelism: usize::from(args.parallelism),
        retries: args.retries,
        interrupt: (!args.dry_run).then(interrupt_on_signals),
        ..RunOptions::default()
    };
    if args.dry_run {
        return write_plan(
            workflow,
            selection.as_deref(),
            &runtime,
            &config,
            &options,
            out,
        )
        .map_err(CliError::usage);
    }
    let report = run_workflow(
        workflow,
        selection.as_deref(),
        runtime,
        &config,
        &project.resources(),
        &options,
    );
    let _ = out.flush();
    if json_logs {
        log_summary(&report);
    } else {
        eprint!("\n{}", report.summary_table());
    }
    if report.succeeded() {
        Ok(())
    } else if report.interrupted() {
        Err(CliError {
            code: EXIT_INTERRUPTED,
            message: format!(
                "workflow {} at {}: interrupted; running jobs were stopped",
                workflow.id(),
                format_runtime(&runtime)
            ),
        })
    } else {
        let failed: Vec<String> = report
            .outcomes
            .iter()
            .filter(|o| o.status != bigflow_core::JobStatus::Succeeded)
            .map(|o| format!("{} {}", o.job_id, o.status))
            .collect();
        Err(CliError {
            code: EXIT_JOB_FAILED,
            message: format!(
                "workflow {} at {}: {}",
                workflow.id(),
                format_runtime(&runtime),
                failed.join(", ")
            ),
        })
    }
}

/// The worst status of a run's jobs, as the run history records it.
fn run_status(report: &bigflow_core::RunReport) -> String {
    use bigflow_core::JobStatus::*;
    [Interrupted, TimedOut, Failed, Skipped]
        .into_iter()
        .find(|s| report.outcomes.iter().any(|o| o.status == *s))
        .unwrap_or(Succeeded)
        .to_string()
}

fn backfill(
    project: &Project,
    args: BackfillArgs,
    json_logs: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use crate::backfill::{History, MAX_RUNTIMES, parse_bound};

    let workflow = project
        .find_workflow(&args.workflow)
        .map_err(CliError::usage)?;
    let start = parse_bound("--start-time", &args.start_time).map_err(CliError::usage)?;
    let end = parse_bound("--end-time", &args.end_time).map_err(CliError::usage)?;
    let runtimes = workflow
        .schedule()
        .runtimes_between(start, end, MAX_RUNTIMES)
        .map_err(|e| CliError::usage(format!("workflow {}: {e}", workflow.id())))?;
    let config = resolve_config(project, workflow, args.config.as_deref())?;
    check_job_environments(project, workflow, None, &config)?;
    let env = config.env().to_string();
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
    let mut history = History::load(&cwd, workflow.id()).map_err(|e| {
        CliError::usage(format!(
            "cannot read the run history under {}: {e}",
            cwd.join(crate::backfill::HISTORY_DIR).display()
        ))
    })?;
    let done = |h: &History, t: &bigflow_core::Runtime| !args.rerun && h.succeeded(t, &env);
    let stops = if workflow.depends_on_past() {
        "depends_on_past: stops at the first failed runtime"
    } else {
        "no depends_on_past: a failed runtime does not stop later ones"
    };
    if args.dry_run {
        let pending = runtimes.iter().filter(|t| !done(&history, t)).count();
        writeln!(
            out,
            "Backfill plan: workflow {} ({}), config {}, {} runtime(s) from {} to {}, {} to run; {}",
            workflow.id(),
            workflow.schedule(),
            env,
            runtimes.len(),
            format_runtime(&start),
            format_runtime(&end),
            pending,
            stops
        )
        .map_err(CliError::usage)?;
        for t in &runtimes {
            if done(&history, t) {
                writeln!(
                    out,
                    "  {}  already succeeded: skipped (--rerun runs it again)",
                    format_runtime(t)
                )
            } else {
                writeln!(out, "  {}", format_runtime(t))
            }
            .map_err(CliError::usage)?;
        }
        return Ok(());
    }
    if runtimes.is_empty() {
        eprintln!(
            "backfill of {}: schedule {} has no runtime from {} to {}; nothing to run",
            workflow.id(),
            workflow.schedule(),
            format_runtime(&start),
            format_runtime(&end)
        );
        return Ok(());
    }
    let options = RunOptions {
        parallelism: usize::from(args.parallelism),
        retries: args.retries,
        interrupt: Some(interrupt_on_signals()),
        ..RunOptions::default()
    };
    let resources = project.resources();
    let total = runtimes.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    if json_logs {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "backfill {prefix} [{bar:30}] {pos}/{len} runtimes, {elapsed_precise} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(workflow.id().to_string());
    // One line per runtime: above the bar on a terminal, plain lines otherwise.
    let line = |text: String| {
        if json_logs {
            tracing::info!(workflow_id = %workflow.id(), "{text}");
        } else if bar.is_hidden() {
            eprintln!("{text}");
        } else {
            bar.println(text);
        }
    };
    let (mut succeeded, mut skipped, mut failed) = (0usize, 0usize, Vec::new());
    let mut stopped: Option<(bigflow_core::Runtime, usize)> = None;
    for (n, runtime) in runtimes.iter().enumerate() {
        let at = format_runtime(runtime);
        let position = format!("[{}/{}]", n + 1, total);
        if done(&history, runtime) {
            skipped += 1;
            line(format!("{position} {at}  already succeeded, skipped"));
            bar.inc(1);
            continue;
        }
        bar.set_message(at.clone());
        let report = run_workflow(workflow, None, *runtime, &config, &resources, &options);
        let _ = out.flush();
        if report.interrupted() {
            bar.abandon();
            return Err(CliError {
                code: EXIT_INTERRUPTED,
                message: format!(
                    "backfill of {} interrupted at {at}; running jobs were stopped. Run the same command again to resume",
                    workflow.id()
                ),
            });
        }
        let status = run_status(&report);
        if let Err(e) = history.record(runtime, &env, &status) {
            bar.abandon();
            return Err(CliError {
                code: EXIT_JOB_FAILED,
                message: format!(
                    "cannot write the run history {}: {e}",
                    history.path().display()
                ),
            });
        }
        let seconds: f64 = report
            .outcomes
            .iter()
            .map(|o| o.duration.as_secs_f64())
            .sum();
        if report.succeeded() {
            succeeded += 1;
            line(format!(
                "{position} {at}  succeeded ({} job(s), {seconds:.2}s)",
                report.outcomes.len()
            ));
        } else {
            let why: Vec<String> = report
                .outcomes
                .iter()
                .filter(|o| o.status != bigflow_core::JobStatus::Succeeded)
                .map(|o| format!("{} {}", o.job_id, o.status))
                .collect();
            line(format!("{position} {at}  {status}: {}", why.join(", ")));
            failed.push(at);
            if workflow.depends_on_past() {
                stopped = Some((*runtime, total - n - 1));
                bar.inc(1);
                break;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut summary = format!(
        "backfill of {} ({}), config {}: {} runtime(s): {} succeeded, {} already succeeded, {} failed",
        workflow.id(),
        workflow.schedule(),
        env,
        total,
        succeeded,
        skipped,
        failed.len()
    );
    if let Some((_, left)) = stopped {
        summary.push_str(&format!(", {left} not run"));
    }
    line(summary);
    if failed.is_empty() {
        return Ok(());
    }
    let message = match stopped {
        Some((at, left)) => format!(
            "backfill of {}: {} failed and the workflow depends_on_past, so the {left} later runtime(s) did not run; fix it and run the same command again to resume from {}",
            workflow.id(),
            format_runtime(&at),
            format_runtime(&at)
        ),
        None => format!(
            "backfill of {}: failed runtimes: {}; run the same command again to retry them",
            workflow.id(),
            failed.join(", ")
        ),
    };
    Err(CliError {
        code: EXIT_JOB_FAILED,
        message,
    })
}

/// The run's summary as structured log entries (one per job), for Cloud
/// Logging, where a text table would arrive as unrelated lines.
fn log_summary(report: &bigflow_core::RunReport) {
    let runtime = format_runtime(&report.runtime);
    for o in &report.outcomes {
        tracing::info!(
            workflow_id = %report.workflow_id,
            job_id = %o.job_id,
            runtime = %runtime,
            status = %o.status,
            attempts = o.attempts,
            duration_sec = o.duration.as_secs_f64(),
            "job {} {} after {} attempt(s) in {:.3}s",
            o.job_id,
            o.status,
            o.attempts,
            o.duration.as_secs_f64()
        );
    }
    for job in &report.left_running {
        tracing::warn!(workflow_id = %report.workflow_id, job_id = %job, runtime = %runtime, "job {job} did not finish stopping; what it started may still be running");
    }
}

/// A flag raised by the first SIGINT or SIGTERM; the run then cancels its
/// running jobs so they stop programs and delete what they created (Dataproc
/// clusters, Spark servers). A second signal exits at once.
fn interrupt_on_signals() -> CancelToken {
    let interrupt = CancelToken::default();
    #[cfg(unix)]
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(
            signal,
            i32::from(EXIT_INTERRUPTED),
            interrupt.flag(),
        );
        let _ = signal_hook::flag::register(signal, interrupt.flag());
    }
    interrupt
}

fn resolve_config(
    project: &Project,
    workflow: &Workflow,
    env: Option<&str>,
) -> Result<ResolvedConfig, CliError> {
    let config = project.config_for(workflow);
    // The variable naming the environment must be text: a garbled one is not
    // silently replaced by the default environment.
    let var = format!(
        "{}env",
        config.map_or(bigflow_core::config::DEFAULT_ENV_VAR_PREFIX, |c| c.prefix())
    );
    let from_var = match std::env::var(&var) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(v)) => {
            return Err(CliError::usage(format!(
                "the environment variable {var} ('{}') is not valid UTF-8; set it to an environment's name or unset it",
                v.to_string_lossy()
            )));
        }
    };
    match config {
        Some(config) => config.resolve(env).map_err(CliError::usage),
        None => {
            let env = env
                .map(str::to_string)
                .or(from_var)
                .unwrap_or_else(|| "default".into());
            Ok(ResolvedConfig::empty(&env))
        }
    }
}

/// Refuses, before anything runs, an environment that a selected job's own
/// configuration (a BigQuery dataset's) does not define. The unnamed
/// "default" of a workflow without a config means each job's own default.
fn check_job_environments(
    project: &Project,
    workflow: &Workflow,
    selection: Option<&[&str]>,
    config: &ResolvedConfig,
) -> Result<(), CliError> {
    let env = config.env();
    if project.config_for(workflow).is_none() && env == "default" {
        return Ok(());
    }
    for job in workflow.sequential_order() {
        if selection.is_some_and(|s| !s.contains(&job.id())) {
            continue;
        }
        if let Some(envs) = job.job().environments()
            && !envs.iter().any(|e| e.name == env)
        {
            let envs: Vec<&str> = envs.iter().map(|e| e.name.as_str()).collect();
            return Err(CliError::usage(format!(
                "job {}.{} has no configuration for environment '{env}'; its environments: {}. Pass --config with one of them",
                workflow.id(),
                job.id(),
                if envs.is_empty() {
                    "none".to_string()
                } else {
                    envs.join(", ")
                }
            )));
        }
    }
    Ok(())
}

fn write_plan(
    workflow: &Workflow,
    selection: Option<&[&str]>,
    runtime: &bigflow_core::Runtime,
    config: &ResolvedConfig,
    options: &RunOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "Plan: workflow {} at runtime {}, config {}, parallelism {}, retries {}",
        workflow.id(),
        format_runtime(runtime),
        config.env(),
        options.parallelism,
        if options.retries { "on" } else { "off" }
    )?;
    let jobs = workflow
        .sequential_order()
        .filter(|j| selection.is_none_or(|s| s.contains(&j.id())));
    for (n, job) in jobs.enumerate() {
        let j = job.job();
        let after = workflow
            .parents(job.id())
            .iter()
            .filter(|p| selection.is_none_or(|s| s.contains(&p.as_str())))
            .cloned()
            .collect::<Vec<_>>();
        writeln!(
            out,
            "{:>3}. {}{}  [timeout {}s, retries {} x {}s]",
            n + 1,
            job.id(),
            if after.is_empty() {
                String::new()
            } else {
                format!(" (after {})", after.join(", "))
            },
            j.execution_timeout().as_secs_f64(),
            j.retry_count(),
            j.retry_pause().as_secs_f64()
        )?;
    }
    Ok(())
}

/// The project binary as a Beam SDK worker: started by a runner with the
/// container boot contract's flags (`--id --control_endpoint …`, or their
/// environment variables and no command), it rebuilds the pipeline of the
/// job the pipeline options name and serves it over the Fn API.
#[cfg(feature = "beam")]
mod beam_worker {
    use std::process::ExitCode;

    use anyhow::{Context as _, anyhow};
    use bigflow_beam::Pipeline;
    use bigflow_beam::runner::portable::{WorkerArgs, serve_worker};
    use bigflow_core::{JobContext, Project};

    use super::{EXIT_JOB_FAILED, EXIT_USAGE, parse_runtime, resolve_config};

    /// The worker's endpoints, when `args` start a worker.
    pub fn args(args: &[String]) -> Option<anyhow::Result<WorkerArgs>> {
        let rest = args.get(1..).unwrap_or_default();
        if let Some(w) = WorkerArgs::from_flags(rest) {
            return Some(w);
        }
        if rest.is_empty() {
            return WorkerArgs::from_env();
        }
        None
    }

    /// Serves as a worker until the runner is done with it.
    pub fn run(project: &Project, args: anyhow::Result<WorkerArgs>) -> ExitCode {
        init_logging();
        let args = match args {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        match serve_worker(args, |options| rebuild(project, options)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_JOB_FAILED)
            }
        }
    }

    /// Logs to stderr and, once the runner's Logging stream is open, to it.
    fn init_logging() {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .compact(),
            )
            .with(bigflow_beam::runner::portable::FnApiLogLayer)
            .try_init();
    }

    /// The pipeline of the job named by the options, built as `run` builds it.
    fn rebuild(
        project: &Project,
        options: &serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<Pipeline> {
        let get = |key: &str| {
            options.get(key).and_then(|v| v.as_str()).ok_or_else(|| {
                anyhow!(
                    "the pipeline options have no {key}: this worker runs pipelines submitted by a BeamJob of this project"
                )
            })
        };
        let workflow = project
            .find_workflow(get("bigflow_workflow_id")?)
            .map_err(|e| anyhow!("{e}"))?;
        let job_id = get("bigflow_job_id")?;
        let job = workflow
            .job(job_id)
            .ok_or_else(|| anyhow!("workflow {} has no job {job_id}", workflow.id()))?;
        let runtime = parse_runtime(get("bigflow_runtime")?).map_err(|e| anyhow!("{e}"))?;
        let config = resolve_config(project, workflow, Some(get("bigflow_env")?))
            .map_err(|e| anyhow!("{}", e.message))?;
        let ctx = JobContext::new(runtime, workflow.id(), job_id, config)
            .with_resources(project.resources());
        bigflow_beam::runner::capture::capture(|| job.job().execute(&ctx))
            .with_context(|| format!("rebuilding the pipeline of job {}.{job_id}", workflow.id()))
    }
}
