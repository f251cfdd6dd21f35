//! The `bigflow` tool (alias `bf`): what needs no project code or builds it.
//!
//! - [`scaffold`]: the `start-project` command.
//! - [`project`]: finding `bigflow.toml`, building and running the project binary
//!   (`run`, `backfill`, `list`, `warehouse` delegate to it).
//! - [`version`]: the `project-version` and `release` commands, from git tags.
//! - [`dags`]: the `build-dags` command, Airflow DAG files for Composer.
//! - [`image`]: the `build-image` command, the project's OCI image without Docker.
//! - [`package`]: the `build-package` command, tests with a JUnit report and the release build.
//! - [`deploy`]: the `deploy-image` command, pushing the image to its registry.

pub mod dags;
pub mod deploy;
pub mod error;
pub mod image;
pub mod package;
pub mod project;
pub mod scaffold;
pub mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use error::{Result, ToolError};
use project::ProjectDir;
use scaffold::BigflowSource;

#[derive(Debug, Parser)]
#[command(
    name = "bigflow",
    version,
    about = "BigFlow for Rust: batch data workflows for Google Cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new project (non-interactive).
    StartProject {
        /// The project's name (also its Cargo package name).
        name: String,
        /// Directory to create the project in (default: the current one).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Depend on this checkout's bigflow crate (its crates/bigflow directory); default: the checkout the tool was built from.
        #[arg(long, value_name = "DIR")]
        bigflow_path: Option<PathBuf>,
    },
    /// Build the project in the current directory and run a workflow or job.
    #[command(disable_help_flag = true)]
    Run {
        /// Build with --release.
        #[arg(long)]
        release: bool,
        /// Arguments of the project binary's `run`: --workflow ID | --job WF.JOB [--runtime R] [--config ENV] …
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the project and run a workflow for every runtime of its schedule in a range.
    #[command(disable_help_flag = true)]
    Backfill {
        /// Arguments of the project binary's `backfill`: --workflow ID --start-time A --end-time B [--config ENV] [--dry-run] [--rerun] …
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the project and list its workflows and jobs.
    List,
    /// Build the project and run ad-hoc SQL on its local BigQuery warehouse.
    #[command(disable_help_flag = true)]
    Warehouse {
        /// Arguments of the project binary's `warehouse`: query "<SQL>" [--format table|json|csv] …
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Generate one Airflow DAG file per workflow into .dags/.
    BuildDags(dags::BuildDagsOptions),
    /// Run the project's tests (JUnit XML into build/junit-reports/), then build it with --release.
    BuildPackage,
    /// build-package, then build-image and build-dags with the release binary.
    Build {
        /// Deployment environment (docker_repository) for the image and DAGs.
        #[arg(long, short = 'c')]
        config: Option<String>,
        /// Only this workflow's DAG.
        #[arg(long, short = 'w')]
        workflow: Option<String>,
        /// The DAGs' start time (default: the current hour).
        #[arg(long, short = 't')]
        start_time: Option<String>,
        /// Do not write the image archive.
        #[arg(long)]
        no_export: bool,
    },
    /// Build the project's OCI image (no Docker needed) and export it to .image/.
    BuildImage(image::BuildImageOptions),
    /// Push the image archive to the project's Docker repository.
    DeployImage(deploy::DeployImageArgs),
    /// Upload the DAGs to Composer's bucket (after checking their image exists).
    DeployDags(deploy::DeployDagsArgs),
    /// deploy-image, then deploy-dags.
    Deploy {
        #[command(flatten)]
        image: deploy::DeployImageArgs,
        #[command(flatten)]
        dags: deploy::DagsTargetArgs,
    },
    /// Print Cloud Logging links to each workflow's logs (labels.workflow_id).
    Logs {
        /// Only this workflow (default: every workflow; builds the project to list them).
        #[arg(long, short = 'w')]
        workflow: Option<String>,
        /// Deployment environment whose gcp_project_id holds the logs.
        #[arg(long, short = 'c')]
        config: Option<String>,
    },
    /// Print the project version derived from git tags.
    #[command(visible_alias = "pv")]
    ProjectVersion,
    /// Tag HEAD with the next minor version and push the tag to origin.
    Release {
        /// SSH private key used to push the tag.
        #[arg(long, short = 'i', value_name = "FILE")]
        ssh_identity_file: Option<PathBuf>,
    },
}

/// Runs the tool with the process arguments.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(bigflow_short_flags(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = e.to_string();
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// BigFlow's multi-letter short flags (`-dd`, `-cdf`, `-ve`, `-vs`, `-dc`),
/// which clap cannot declare, as their long forms; everything else unchanged.
fn bigflow_short_flags(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    const ALIASES: &[(&str, &str)] = &[
        ("-dd", "--dags-dir"),
        ("-cdf", "--clear-dags-folder"),
        ("-ve", "--vault-endpoint"),
        ("-vs", "--vault-secret"),
        ("-dc", "--deployment-config-path"),
    ];
    args.into_iter()
        .map(|arg| {
            ALIASES
                .iter()
                .find(|(short, _)| arg == *short)
                .map_or(arg, |(_, long)| long.into())
        })
        .collect()
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| ToolError::failed(format!("cannot read the current directory: {e}")))
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::StartProject {
            name,
            path,
            bigflow_path,
        } => {
            let parent = match path {
                Some(p) => p,
                None => cwd()?,
            };
            let from_flag = bigflow_path.is_some();
            let source = bigflow_path.map_or(BigflowSource::ToolCheckout, BigflowSource::Path);
            let started = scaffold::start_project(&name, &parent, &source)?;
            let dir = started.dir;
            println!("Created BigFlow project {name} in {}", dir.display());
            println!(
                "It depends on the bigflow crate at {} ({})",
                started.bigflow.display(),
                if from_flag {
                    "--bigflow-path"
                } else {
                    "the checkout this tool was built from; --bigflow-path DIR picks another"
                }
            );
            println!(
                "Next: cd {} && bigflow run --workflow hello_world (the first build takes a minute or two)",
                dir.display()
            );
            println!(
                "The BigQuery example needs the `bigquery` feature (the embedded warehouse; a few minutes more to build): BIGFLOW_FEATURES=bigquery bigflow run --workflow internationalports, or features = [\"bigquery\"] in bigflow.toml"
            );
            Ok(())
        }
        Command::Run { release, args } => delegate(release, "run", args),
        Command::Backfill { args } => delegate(false, "backfill", args),
        Command::List => delegate(false, "list", Vec::new()),
        Command::Warehouse { args } => delegate(false, "warehouse", args),
        Command::BuildDags(options) => {
            let project = ProjectDir::discover(&cwd()?)?;
            for path in dags::build_dags(&project, &options)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::BuildPackage => {
            let project = ProjectDir::discover(&cwd()?)?;
            let binary = package::build_package(&project)?;
            println!("{}", binary.display());
            Ok(())
        }
        Command::Build {
            config,
            workflow,
            start_time,
            no_export,
        } => {
            let project = ProjectDir::discover(&cwd()?)?;
            eprintln!("==> [1/3] build-package: tests, then the release build");
            let binary = package::build_package(&project)?;
            eprintln!("==> [2/3] build-image");
            let image_options = image::BuildImageOptions {
                config: config.clone(),
                no_export,
                binary: Some(binary.clone()),
                ..Default::default()
            };
            let built = image::build_project_image(&project, &image_options)?;
            println!("{}", image::describe(&built, &project.root));
            eprintln!("==> [3/3] build-dags");
            let dag_options = dags::BuildDagsOptions {
                workflow,
                start_time,
                config,
                binary: Some(binary),
                ..Default::default()
            };
            for path in dags::build_dags(&project, &dag_options)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Command::BuildImage(options) => {
            let project = ProjectDir::discover(&cwd()?)?;
            let built = image::build_project_image(&project, &options)?;
            println!("{}", image::describe(&built, &project.root));
            Ok(())
        }
        Command::DeployImage(args) => {
            let project = deploy::DeployContext::discover(
                &cwd()?,
                args.config_path.deployment_config_path.as_deref(),
            )?;
            let report = deploy::deploy_image(&project, &args)?;
            println!(
                "pushed {} {} (uploaded {} blobs, {} already there)",
                report.reference,
                report.digest,
                report.uploaded.len(),
                report.skipped.len()
            );
            for tag in &report.also_tagged {
                println!("tagged {tag}");
            }
            Ok(())
        }
        Command::DeployDags(args) => {
            let project = deploy::DeployContext::discover(
                &cwd()?,
                args.config_path.deployment_config_path.as_deref(),
            )?;
            print_dags_report(&deploy::deploy_dags(&project, &args)?);
            Ok(())
        }
        Command::Deploy { image, dags } => {
            let project = deploy::DeployContext::discover(
                &cwd()?,
                image.config_path.deployment_config_path.as_deref(),
            )?;
            let report = deploy::deploy_image(&project, &image)?;
            println!("pushed {} {}", report.reference, report.digest);
            for tag in &report.also_tagged {
                println!("tagged {tag}");
            }
            let dags = deploy::DeployDagsArgs {
                config: image.config.clone(),
                target: dags,
                auth: image.auth.clone(),
                config_path: image.config_path.clone(),
            };
            print_dags_report(&deploy::deploy_dags(&project, &dags)?);
            Ok(())
        }
        Command::Logs { workflow, config } => {
            let project = ProjectDir::discover(&cwd()?)?;
            let deployment = project
                .deployment
                .resolve(config.as_deref())
                .map_err(ToolError::usage)?;
            let gcp_project = deploy::setting(&None, &deployment, "gcp_project_id").ok_or_else(|| {
                ToolError::usage(format!(
                    "no gcp_project_id for environment '{}'; add it to bigflow.toml [deployment.{}]",
                    deployment.env(),
                    deployment.env()
                ))
            })?;
            let ids = match workflow {
                Some(id) => vec![id],
                None => {
                    let binary = project.build_binary(false)?;
                    project
                        .manifest(&binary, None)?
                        .workflows
                        .into_iter()
                        .map(|w| w.workflow_id)
                        .collect()
                }
            };
            for id in ids {
                println!("{id}: {}", logs_url(&gcp_project, &id));
            }
            Ok(())
        }
        Command::ProjectVersion => {
            println!("{}", version::project_version(&cwd()?)?);
            Ok(())
        }
        Command::Release { ssh_identity_file } => {
            let tag = version::release(&cwd()?, ssh_identity_file.as_deref())?;
            println!("{tag}");
            Ok(())
        }
    }
}

/// The Cloud Logging console query for a workflow's entries (the labels
/// `--log-format json` writes).
pub fn logs_url(gcp_project: &str, workflow_id: &str) -> String {
    let query = format!("labels.workflow_id=\"{workflow_id}\"");
    format!(
        "https://console.cloud.google.com/logs/query;query={}?project={}",
        bigflow_gcp::storage::encode(&query),
        bigflow_gcp::storage::encode(gcp_project)
    )
}

fn print_dags_report(report: &deploy::DagsReport) {
    for image in &report.images {
        println!("image {image} is in the registry");
    }
    for name in &report.uploaded {
        println!("uploaded {name}");
    }
    for name in &report.removed {
        println!("removed {name}");
    }
}

/// Builds the project binary and runs `<binary> <command> <args>`.
fn delegate(release: bool, command: &str, args: Vec<String>) -> Result<()> {
    let project = ProjectDir::discover(&cwd()?)?;
    let binary = project.build_binary(release)?;
    let mut full = vec![command.to_string()];
    full.extend(args);
    match project.run_binary(&binary, &full)? {
        0 => Ok(()),
        code => Err(ToolError::Exit(code)),
    }
}
