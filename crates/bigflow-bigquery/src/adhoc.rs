//! Ad-hoc queries on a local warehouse (BigFlow's "ad-hoc queries" use
//! case): what `warehouse query` runs, in a few lines of Rust.
//!
//! ```no_run
//! use bigflow_bigquery::adhoc;
//! use bigflow_bigquery::format::Format;
//! let out = adhoc::query(
//!     &bigflow_bigquery::local::default_dir(),
//!     "SELECT port_name FROM `my-project.internationalports.polish_ports`",
//!     None,
//!     Format::Table,
//! )?;
//! print!("{out}");
//! # Ok::<(), bigflow_bigquery::BqError>(())
//! ```

use std::path::Path;

use crate::backend::QueryContext;
use crate::dataset::open_local;
use crate::error::{BqError, Result};
use crate::format::{Format, render};

/// Runs `sql` on the warehouse in `dir`; bare table names resolve in
/// `default_dataset` (`project.dataset`) when given. Returns the formatted result.
pub fn query(
    dir: &Path,
    sql: &str,
    default_dataset: Option<&str>,
    format: Format,
) -> Result<String> {
    let ctx = match default_dataset {
        None => QueryContext::default(),
        Some(d) => {
            let (project, dataset) = d.split_once('.').ok_or_else(|| BqError::InvalidName {
                name: d.to_string(),
                cause: "expected PROJECT.DATASET".into(),
            })?;
            QueryContext {
                default_project: project.to_string(),
                default_dataset: dataset.to_string(),
                ..QueryContext::default()
            }
        }
    };
    let existed = dir.is_dir();
    let backend = open_local(dir)?;
    let result = match backend.execute(sql, &ctx) {
        Err(BqError::UnknownTable { .. }) if !existed => {
            return Err(BqError::Config(format!(
                "no local warehouse at {}: run a workflow first, or pass --dir / set {}",
                dir.display(),
                crate::local::WAREHOUSE_ENV
            )));
        }
        other => other?,
    };
    render(&result, format)
}

/// Whether an error is the user's input (exit code 2) rather than a failure (1).
pub fn is_input_error(e: &BqError) -> bool {
    !matches!(e, BqError::Io { .. } | BqError::Engine(_))
}
