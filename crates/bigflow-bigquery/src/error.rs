//! The one error type of the Dataset API and its backends.
//!
//! Every variant says what went wrong, where (table, partition, line and
//! column of the SQL) and, when there is one, what to do about it.

use std::fmt;

/// A place in a SQL text: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// ` at line L, column C` or nothing.
pub(crate) fn at(position: &Option<Position>) -> String {
    match position {
        Some(p) => format!(" at {p}"),
        None => String::new(),
    }
}

/// Why a Dataset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BqError {
    /// The SQL does not parse or does not plan (unknown column, bad types in an expression…).
    #[error("invalid SQL{}: {message}", at(.position))]
    Sql {
        /// What is wrong.
        message: String,
        /// Where, when known.
        position: Option<Position>,
    },
    /// A table that does not exist.
    #[error("table `{table}` does not exist{}{hint}", at(.position))]
    UnknownTable {
        /// `project.dataset.table`.
        table: String,
        /// Where the SQL names it, when it does.
        position: Option<Position>,
        /// What to do.
        hint: String,
    },
    /// A table that already exists where a new one was asked for.
    #[error(
        "table `{table}` already exists; use CREATE TABLE IF NOT EXISTS or CREATE OR REPLACE TABLE"
    )]
    TableExists {
        /// `project.dataset.table`.
        table: String,
    },
    /// Values that do not fit a table's columns.
    #[error("type mismatch writing into `{table}`, column `{column}`: {cause}")]
    TypeMismatch {
        /// `project.dataset.table`.
        table: String,
        /// The column.
        column: String,
        /// What was given and what the column holds.
        cause: String,
    },
    /// A construct the local warehouse does not implement (see docs/bigquery.md).
    #[error(
        "unsupported by the local warehouse{}: {construct} (supported SQL is listed in docs/bigquery.md)",
        at(.position)
    )]
    Unsupported {
        /// The construct, e.g. `MERGE statement` or `function JSON_EXTRACT`.
        construct: String,
        /// Where, when known.
        position: Option<Position>,
    },
    /// A partition that does not fit the table or the rows written.
    #[error("wrong partition for `{table}`{}: {cause}", .partition.as_ref().map(|p| format!(" (partition {p})")).unwrap_or_default())]
    WrongPartition {
        /// `project.dataset.table`.
        table: String,
        /// `YYYYMMDD`, when one was given.
        partition: Option<String>,
        /// What is wrong.
        cause: String,
    },
    /// A table, dataset or partition name that is not valid.
    #[error("invalid name '{name}': {cause}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is rejected.
        cause: String,
    },
    /// SQL templating failed (unknown `{name}`, unbalanced braces).
    #[error("SQL template: {0}")]
    Template(String),
    /// Bad configuration (unknown environment, bad property).
    #[error("dataset configuration: {0}")]
    Config(String),
    /// Bad rows or files given to insert or load.
    #[error("invalid input for `{table}`: {cause}")]
    Input {
        /// `project.dataset.table`.
        table: String,
        /// What is wrong.
        cause: String,
    },
    /// A sensor's condition is not met yet.
    #[error("`{table}` is not ready: no rows match {where_clause}")]
    NotReady {
        /// The table alias waited for.
        table: String,
        /// The condition.
        where_clause: String,
    },
    /// Reading or writing the warehouse's files failed.
    #[error("warehouse storage at {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A table whose manifest names a data file that is missing or cannot
    /// be read: every read and write of it fails (nothing is read as empty,
    /// nothing is overwritten) until the file is back or the table is dropped.
    #[error(
        "table `{table}` is damaged: file {file} {problem}; restore the file (from a backup or wherever it was moved), or drop the table (DROP TABLE) and recreate it"
    )]
    Damaged {
        /// `project.dataset.table`.
        table: String,
        /// The data file's path.
        file: String,
        /// `is missing`, `cannot be read (…)`, `has N bytes, M were written`.
        problem: String,
    },
    /// Anything else the engine reports.
    #[error("query engine: {0}")]
    Engine(String),
}

/// Results of the Dataset API.
pub type Result<T, E = BqError> = std::result::Result<T, E>;

impl BqError {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        BqError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    /// An engine's failure to read `path` while loading it into `table`
    /// becomes bad input naming both; other errors stay as they are.
    pub(crate) fn loading(self, table: &impl fmt::Display, path: &std::path::Path) -> Self {
        match self {
            BqError::Engine(cause) => BqError::Input {
                table: table.to_string(),
                cause: format!("loading {}: {cause}", path.display()),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_table_position_and_cause() {
        let e = BqError::UnknownTable {
            table: "p.d.t".into(),
            position: Some(Position { line: 2, column: 7 }),
            hint: "; create it first".into(),
        };
        assert_eq!(
            e.to_string(),
            "table `p.d.t` does not exist at line 2, column 7; create it first"
        );
        let e = BqError::WrongPartition {
            table: "p.d.t".into(),
            partition: Some("20200101".into()),
            cause: "the table is not partitioned".into(),
        };
        assert_eq!(
            e.to_string(),
            "wrong partition for `p.d.t` (partition 20200101): the table is not partitioned"
        );
    }
}
