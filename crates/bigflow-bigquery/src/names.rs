//! Table and dataset names: `project.dataset.table`, `dataset.table`, a bare
//! `table` in the default dataset, and the day-partition decorator `$YYYYMMDD`.

use std::fmt;

use chrono::NaiveDate;

use crate::error::{BqError, Result};

/// A fully qualified table name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// The Google Cloud project.
    pub project: String,
    /// The dataset.
    pub dataset: String,
    /// The table.
    pub table: String,
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

fn check_part(kind: &str, part: &str, full: &str) -> Result<()> {
    let ok = !part.is_empty()
        && part.len() <= 1024
        && match kind {
            // Project ids: letters, digits, '-', and the legacy 'domain:' prefix.
            "project" => part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '_')),
            _ => part
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-'),
        };
    if ok {
        Ok(())
    } else {
        Err(BqError::InvalidName {
            name: full.to_string(),
            cause: format!(
                "'{part}' is not a valid {kind} name (letters, digits, '_'{})",
                if kind == "project" { ", '-'" } else { "" }
            ),
        })
    }
}

impl TableId {
    /// A table id from its parts, validated.
    pub fn new(project: &str, dataset: &str, table: &str) -> Result<TableId> {
        let full = format!("{project}.{dataset}.{table}");
        check_part("project", project, &full)?;
        check_part("dataset", dataset, &full)?;
        check_part("table", table, &full)?;
        Ok(TableId {
            project: project.to_string(),
            dataset: dataset.to_string(),
            table: table.to_string(),
        })
    }

    /// Parses `project.dataset.table`, `dataset.table` (in `default_project`)
    /// or `table` (in the default dataset); `project:dataset.table` too.
    pub fn parse(name: &str, default_project: &str, default_dataset: &str) -> Result<TableId> {
        let name = name.trim().trim_matches('`');
        let normalized = name.replacen(':', ".", 1);
        let parts: Vec<&str> = if name.contains(':') {
            normalized.split('.').collect()
        } else {
            name.split('.').collect()
        };
        match parts.as_slice() {
            [t] => TableId::new(default_project, default_dataset, t),
            [d, t] => TableId::new(default_project, d, t),
            [p, d, t] => TableId::new(p, d, t),
            _ => Err(BqError::InvalidName {
                name: name.to_string(),
                cause: "expected project.dataset.table, dataset.table or table".into(),
            }),
        }
    }
}

/// Splits `table$YYYYMMDD` into the table and its day partition.
pub fn split_partition(name: &str) -> Result<(&str, Option<NaiveDate>)> {
    match name.split_once('$') {
        None => Ok((name, None)),
        Some((table, decorator)) => Ok((table, Some(parse_partition(name, decorator)?))),
    }
}

/// Parses a `YYYYMMDD` partition id.
pub fn parse_partition(name: &str, decorator: &str) -> Result<NaiveDate> {
    if decorator.len() != 8 || !decorator.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BqError::InvalidName {
            name: name.to_string(),
            cause: format!("partition '{decorator}' is not a day partition YYYYMMDD"),
        });
    }
    NaiveDate::parse_from_str(decorator, "%Y%m%d").map_err(|_| BqError::InvalidName {
        name: name.to_string(),
        cause: format!("partition '{decorator}' is not a calendar date"),
    })
}

/// `YYYYMMDD` of a day.
pub fn partition_id(day: NaiveDate) -> String {
    day.format("%Y%m%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_spellings() {
        let t = TableId::parse("`my-proj.ds.t1`", "p", "d").unwrap();
        assert_eq!(t.to_string(), "my-proj.ds.t1");
        assert_eq!(
            TableId::parse("ds.t", "p", "d").unwrap().to_string(),
            "p.ds.t"
        );
        assert_eq!(TableId::parse("t", "p", "d").unwrap().to_string(), "p.d.t");
        assert_eq!(
            TableId::parse("pr:ds.t", "p", "d").unwrap().to_string(),
            "pr.ds.t"
        );
        let e = TableId::parse("a.b.c.d", "p", "d").unwrap_err();
        assert!(
            e.to_string().contains("expected project.dataset.table"),
            "{e}"
        );
        let e = TableId::parse("ds.t/x", "p", "d").unwrap_err();
        assert!(
            e.to_string().contains("'t/x' is not a valid table name"),
            "{e}"
        );
        assert!(TableId::parse("../etc.x", "p", "d").is_err());
    }

    #[test]
    fn partitions() {
        let (t, p) = split_partition("events$20200801").unwrap();
        assert_eq!(t, "events");
        assert_eq!(p, NaiveDate::from_ymd_opt(2020, 8, 1));
        assert_eq!(split_partition("events").unwrap(), ("events", None));
        let e = split_partition("events$2020081").unwrap_err();
        assert!(e.to_string().contains("not a day partition"), "{e}");
        let e = split_partition("events$20201301").unwrap_err();
        assert!(e.to_string().contains("not a calendar date"), "{e}");
        assert_eq!(
            partition_id(NaiveDate::from_ymd_opt(2020, 8, 1).unwrap()),
            "20200801"
        );
    }
}
