//! Runs the cases of `.test` files on a temporary local warehouse, or on a
//! peer speaking BigQuery's REST API (`peer.rs`), and classifies each: pass,
//! unsupported, wrong, skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bigflow_bigquery::{Backend, BqError, LocalWarehouse, QueryContext, QueryResult};

use super::compare::compare_rows;
use super::format::{Case, Expected, Ty, V, parse_file};
use super::peer::Peer;

/// Project and dataset the cases' bare table names resolve in.
const PROJECT: &str = "conformance";
const DATASET: &str = "t";
/// How long one statement may run before it counts as wrong (a hang).
const TIMEOUT: Duration = Duration::from_secs(30);

/// `required_features` BigQuery has: cases needing only these run.
/// Everything else is a ZetaSQL engine option BigQuery does not offer
/// (unsigned and 32-bit types, protos, lambdas, array ordering and
/// equality, grouping by arrays and structs, nanosecond timestamps, UUID,
/// primary keys, …), so cases requiring it are skipped.
const BIGQUERY_FEATURES: &[&str] = &[
    "ANALYTIC_FUNCTIONS",
    "CIVIL_TIME",
    "JSON_TYPE",
    "NUMERIC_TYPE",
    "BIGNUMERIC_TYPE",
    "SAFE_FUNCTION_CALL",
    "FORMAT_IN_CAST",
    "NAMED_ARGUMENTS",
    "JSON_VALUE_EXTRACTION_FUNCTIONS",
    "NULLS_FIRST_LAST_IN_ORDER_BY",
    "IS_DISTINCT",
    "NULL_HANDLING_MODIFIER_IN_AGGREGATE",
    "INTERVAL_TYPE",
    "JSON_MUTATOR_FUNCTIONS",
    "TIME_BUCKET_FUNCTIONS",
    "LIMIT_IN_AGGREGATE",
    "ORDER_BY_IN_AGGREGATE",
    "JSON_CONSTRUCTOR_FUNCTIONS",
    "JSON_ARRAY_FUNCTIONS",
    "PARAMETERIZED_TYPES",
    "DML_UPDATE_WITH_JOIN",
    "JSON_KEYS_FUNCTION",
    "JSON_QUERY_LAX",
    "QUALIFY",
    "COLLATION_SUPPORT",
    "ORDER_BY_COLLATE",
    "DATE_TIME_CONSTRUCTORS",
    "ARRAY_AGGREGATION_FUNCTIONS",
    "GEOGRAPHY",
    "RANGE_TYPE",
    "CORRESPONDING",
];

/// Result types BigQuery has; a case whose result has another type
/// (INT32, UINT32, UINT64, FLOAT, PROTO, ENUM, UUID, arrays of arrays) is skipped.
const BIGQUERY_TYPES: &[&str] = &[
    "INT64",
    "DOUBLE",
    "FLOAT64",
    "NUMERIC",
    "BIGNUMERIC",
    "STRING",
    "BYTES",
    "BOOL",
    "DATE",
    "DATETIME",
    "TIME",
    "TIMESTAMP",
    "JSON",
    "INTERVAL",
    "GEOGRAPHY",
    "RANGE<DATE>",
    "RANGE<DATETIME>",
    "RANGE<TIMESTAMP>",
];

/// Column types of prepared tables that BigQuery lacks, and the BigQuery type
/// the table is created with instead (cases reading such a column are skipped).
const MAPPED_TYPES: &[(&str, &str)] = &[
    ("int32", "INT64"),
    ("uint32", "INT64"),
    ("uint64", "INT64"),
    ("float", "FLOAT64"),
    ("double", "FLOAT64"),
];

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// BigQuery's answer.
    Pass,
    /// Our clear "unsupported by the local warehouse" error.
    Unsupported(String),
    /// A different answer, success where an error is expected, or another error.
    Wrong(String),
    /// Not run, with the reason (a feature BigQuery lacks).
    Skipped(String),
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's `[name=…]`.
    pub name: String,
    /// What happened.
    pub outcome: Outcome,
}

/// The outcomes of one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// `strings.test`.
    pub file: String,
    /// One per named case (prepare statements are not counted).
    pub cases: Vec<CaseResult>,
}

impl FileResult {
    /// (cases, pass, unsupported, wrong, skipped).
    pub fn counts(&self) -> [usize; 5] {
        let mut c = [self.cases.len(), 0, 0, 0, 0];
        for r in &self.cases {
            let i = match r.outcome {
                Outcome::Pass => 1,
                Outcome::Unsupported(_) => 2,
                Outcome::Wrong(_) => 3,
                Outcome::Skipped(_) => 4,
            };
            c[i] += 1;
        }
        c
    }
}

/// The directory of the `.test` files: `$BIGFLOW_CONFORMANCE_DIR`, else
/// `../shared/zetasql-compliance` next to the repository.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BIGFLOW_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    // `shared/` beside the repository; a clone made elsewhere (a CI
    // checkout in a temporary directory) finds the workplace's copy.
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/zetasql-compliance");
    let workplace = PathBuf::from("/work/shared/zetasql-compliance");
    if !beside.is_dir() && workplace.is_dir() {
        return workplace;
    }
    beside
}

/// Whether `word` occurs in `text` as a whole identifier (case-insensitive).
fn mentions(text: &str, word: &str) -> bool {
    let t = text.to_ascii_lowercase();
    let w = word.to_ascii_lowercase();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(at) = t[from..].find(&w) {
        let start = from + at;
        let end = start + w.len();
        let before = t[..start].chars().next_back();
        let after = t[end..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return true;
        }
        from = end;
    }
    false
}

/// Replaces whole-word `from` (case-insensitive) by `to`.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut last = 0;
    let mut from_at = 0;
    while let Some(at) = lower[from_at..].find(from) {
        let start = from_at + at;
        let end = start + from.len();
        let before = lower[..start].chars().next_back();
        let after = lower[end..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            out.push_str(&text[last..start]);
            out.push_str(to);
            last = end;
        }
        from_at = end;
    }
    out.push_str(&text[last..]);
    out
}

/// `sql` with its integer literals beyond INT64 (UINT64 values, of the
/// columns `MAPPED_TYPES` makes INT64, which cases may not read) as NULL:
/// BigQuery refuses such a literal.
fn without_uint64_literals(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(sql.len());
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                out.extend_from_slice(&bytes[i..(i + 2).min(bytes.len())]);
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
        } else if matches!(c, b'\'' | b'"' | b'`') {
            quote = Some(c);
        } else if c.is_ascii_digit()
            && !bytes[..i]
                .last()
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            let end = i + bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            let integer = !bytes
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'));
            if integer && sql[i..end].parse::<i64>().is_err() {
                out.extend_from_slice(b"NULL");
            } else {
                out.extend_from_slice(&bytes[i..end]);
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| sql.to_string())
}

/// The start of the reason a case is skipped for its default time zone.
const ZONE_DEPENDENT: &str = "depends on the suite's default time zone";

/// The TIMESTAMP and RANGE<TIMESTAMP> columns of a prepared table, from
/// its expected rows' type; `None` when they cannot be told.
fn timestamp_columns(expected: &Expected) -> Option<Vec<String>> {
    let Expected::Value(Ty::Array(Some(row)), _) = expected else {
        return None;
    };
    let Ty::Struct(fields) = &**row else {
        return None;
    };
    let mut columns = Vec::new();
    for (name, ty) in fields {
        let mut names = Vec::new();
        ty.names(&mut names);
        if names.iter().any(|n| n.contains("TIMESTAMP")) {
            columns.push(name.clone()?);
        }
    }
    Some(columns)
}

/// Whether `sql` has a `*` other than `COUNT(*)` (a `SELECT *`, `t.*`, a
/// product: it may read every column).
fn reads_star(sql: &str) -> bool {
    let compact: String = sql
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    compact.replace("count(*)", "").contains('*')
}

/// Why a case is not run, if it is not.
fn skip_reason(case: &Case, non_bq_columns: &BTreeSet<String>) -> Option<String> {
    if let Some(f) = case
        .required
        .iter()
        .find(|f| !BIGQUERY_FEATURES.contains(&f.as_str()))
    {
        return Some(format!("requires {f}, not a BigQuery feature"));
    }
    if let Some(f) = case
        .forbidden
        .iter()
        .find(|f| BIGQUERY_FEATURES.contains(&f.as_str()))
    {
        return Some(format!("holds only without {f}, which BigQuery has"));
    }
    if let Some(zone) = &case.time_zone
        && !matches!(zone.as_str(), "+00" | "UTC" | "Etc/UTC" | "+00:00")
    {
        return Some(format!(
            "default time zone {zone} (BigQuery's queries run in UTC)"
        ));
    }
    let sql = case.sql.to_ascii_lowercase();
    if case.protos
        && (mentions(&sql, "new") || sql.contains("kitchensink") || sql.contains("proto"))
    {
        return Some("protocol buffers (BigQuery has none)".into());
    }
    if case.primary_key_mode.as_deref() == Some("first_column_is_primary_key") {
        return Some("an enforced primary key (BigQuery's primary keys are not enforced)".into());
    }
    if mentions(&sql, "current_datetime") && sql.contains("'2025-12-31") {
        return Some("expects today to be before 2026 (the suite's window has passed)".into());
    }
    if sql.contains("zetasql_test__") {
        return Some("protocol buffer or enum types (BigQuery has none)".into());
    }
    for (word, why) in [
        ("graph_table", "graph queries"),
        ("anonymization", "anonymization"),
        ("differential_privacy", "differential privacy"),
        ("assert_rows_modified", "DML's ASSERT_ROWS_MODIFIED"),
    ] {
        if mentions(&sql, word) {
            return Some(format!("{why} (not in BigQuery's SQL)"));
        }
    }
    // A table preparation may cast to these (its columns of those types are
    // then skipped by `non_bq_columns`); a query may not.
    for ty in ["int32", "uint32", "uint64"] {
        if !case.prepare && mentions(&sql, ty) {
            return Some(format!(
                "the {} type (not in BigQuery's SQL)",
                ty.to_ascii_uppercase()
            ));
        }
    }
    // BigQuery's INTERSECT and EXCEPT take only DISTINCT; its INSERT has no
    // OR IGNORE/REPLACE/UPDATE.
    let words: Vec<&str> = sql.split_whitespace().collect();
    for pair in words.windows(2) {
        match pair {
            ["intersect" | "except", "all"] => {
                return Some(format!(
                    "{} ALL (BigQuery has only {} DISTINCT)",
                    pair[0].to_ascii_uppercase(),
                    pair[0].to_ascii_uppercase()
                ));
            }
            ["insert", "or" | "ignore" | "replace" | "update"] => {
                return Some("INSERT OR/IGNORE/REPLACE/UPDATE (not in BigQuery's DML)".into());
            }
            _ => {}
        }
    }
    if case.time_zone.is_none() && depends_on_default_zone(&sql) {
        return Some(format!(
            "{ZONE_DEPENDENT} America/Los_Angeles (BigQuery's is UTC)"
        ));
    }
    if let Expected::Value(ty, _) = &case.expected {
        let mut names = Vec::new();
        ty.names(&mut names);
        if let Some(t) = names
            .iter()
            .find(|t| !BIGQUERY_TYPES.contains(&t.as_str()) && *t != "?")
        {
            return Some(format!("result type {t} is not a BigQuery type"));
        }
    }
    if let Some(c) = non_bq_columns.iter().find(|c| mentions(&sql, c)) {
        return Some(format!(
            "reads column {c}, whose type (INT32/UINT32/UINT64/FLOAT) BigQuery lacks"
        ));
    }
    for (_, name) in &case.parameters {
        if !mentions(&sql.replace('@', " "), name) {
            return Some(format!("parameter @{name} not found"));
        }
    }
    None
}

/// Whether `sql` (lowercase) converts between TIMESTAMP and civil time or
/// text, in the default time zone.
fn converts_in_zone(sql: &str) -> bool {
    let converts = [
        "date(",
        "datetime(",
        "time(",
        "current_date",
        "current_datetime",
        "current_time",
        "format_timestamp",
        "parse_timestamp",
        "timestamp_trunc",
        "string(",
        "as date)",
        "as datetime)",
        "as time)",
        "as string)",
    ];
    converts.iter().any(|f| sql.contains(f)) || sql.contains("extract(")
}

/// `sql` (lowercase) without its casts of a quoted literal to DATE,
/// DATETIME, TIME or STRING (`cast('2014-01-01' as date)`), which read text,
/// not a TIMESTAMP, so use no time zone.
fn without_literal_casts(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("cast(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 5..];
        let trimmed = after.trim_start();
        // The end of a quoted literal or of NULL at the start of `trimmed`.
        let literal_end = match trimmed.chars().next() {
            Some(q @ ('\'' | '"')) => trimmed[1..].find(q).map(|e| e + 2),
            _ if trimmed.starts_with("null")
                && trimmed[4..].starts_with(|c: char| c.is_whitespace()) =>
            {
                Some(4)
            }
            _ => None,
        };
        let skip = literal_end.and_then(|end| {
            let tail = trimmed[end..].trim_start().strip_prefix("as")?.trim_start();
            ["date)", "datetime)", "time)", "string)"]
                .iter()
                .find(|t| tail.starts_with(*t))
                .map(|t| sql.len() - (tail.len() - t.len()))
        });
        match skip {
            Some(next) => rest = &sql[next..],
            None => {
                out.push_str("cast(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Conversions between TIMESTAMP and civil time that use the default time
/// zone: the functions that convert, and TIMESTAMP literals or casts of
/// text without an explicit zone.
fn depends_on_default_zone(sql: &str) -> bool {
    if !mentions(sql, "timestamp") && !sql.contains("timestamp_val") {
        return false;
    }
    if converts_in_zone(sql) {
        return true;
    }
    // A quoted date-time without a zone read as a TIMESTAMP.
    let zoneless = |q: &str| {
        let b = q.as_bytes();
        b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && !(q.contains("utc") || q.contains('+') || q[10..].contains('-') || q.contains('/'))
    };
    if quoted_strings(sql).iter().any(|q| zoneless(q)) {
        return true;
    }
    // A bound of a RANGE<TIMESTAMP> literal without a zone.
    sql.match_indices("range<timestamp>").any(|(at, m)| {
        let rest = sql[at + m.len()..].trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            return false;
        };
        let literal = rest[1..].split(quote).next().unwrap_or("");
        literal
            .trim_matches(|c| c == '[' || c == ')')
            .split(',')
            .any(|bound| zoneless(bound.trim()))
    })
}

/// The contents of the quoted strings of `sql` (lowercased input).
fn quoted_strings(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = sql.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '"' {
            let mut s = String::new();
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                s.push(d);
            }
            out.push(s);
        }
    }
    out
}

/// `@name` → `(expr)`.
fn substitute_parameters(sql: &str, parameters: &[(String, String)]) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = sql.to_string();
    for (expr, name) in parameters {
        let pattern = format!("@{}", name.to_ascii_lowercase());
        let lower = out.to_ascii_lowercase();
        let mut next = String::new();
        let mut last = 0;
        let mut from = 0;
        while let Some(at) = lower[from..].find(&pattern) {
            let start = from + at;
            let end = start + pattern.len();
            let before = lower[..start].chars().next_back();
            let after = lower[end..].chars().next();
            if before != Some('@') && !after.is_some_and(ident) {
                next.push_str(&out[last..start]);
                next.push_str(&format!("({expr})"));
                last = end;
            }
            from = end;
        }
        next.push_str(&out[last..]);
        out = next;
    }
    out
}

/// A case's statement kind.
fn is_dml(sql: &str) -> bool {
    let first = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("--"))
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(first.as_str(), "INSERT" | "UPDATE" | "DELETE" | "MERGE")
}

/// The table a DML statement changes.
fn dml_target(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let mut i = 1;
    while i < words.len() && matches!(words[i].to_ascii_uppercase().as_str(), "INTO" | "FROM") {
        i += 1;
    }
    words
        .get(i)
        .map(|w| w.trim_matches('`').trim_end_matches('(').to_string())
}

fn ctx() -> QueryContext {
    QueryContext {
        default_project: PROJECT.into(),
        default_dataset: DATASET.into(),
        ..QueryContext::default()
    }
}

/// A statement's error: its message, and whether it counts as
/// "unsupported" (the local warehouse's clear refusal; any error of a peer).
#[derive(Debug)]
pub struct Failure {
    unsupported: bool,
    message: String,
}

/// What one statement gave: `Err` for a hang or a panic.
type Got = Result<Result<QueryResult, Failure>, String>;

/// Where a file's cases run.
#[derive(Clone, Copy)]
pub enum Target<'a> {
    /// A temporary local warehouse per file.
    Local,
    /// A peer speaking BigQuery's REST API: a dataset per file.
    Peer(&'a Arc<Peer>),
}

/// The tables of one file (or one DML case's copy of them).
enum Engine {
    Local {
        wh: Arc<LocalWarehouse>,
        _dir: tempfile::TempDir,
    },
    Peer {
        peer: Arc<Peer>,
        dataset: String,
    },
}

impl Engine {
    fn new(target: Target<'_>, file: &str) -> Result<Engine, String> {
        match target {
            Target::Local => {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let wh = LocalWarehouse::open(dir.path().join("wh")).map_err(|e| e.to_string())?;
                Ok(Engine::Local {
                    wh: Arc::new(wh),
                    _dir: dir,
                })
            }
            Target::Peer(peer) => Ok(Engine::Peer {
                peer: Arc::clone(peer),
                dataset: peer.new_dataset(file)?,
            }),
        }
    }

    /// Runs one statement on its own thread, with a deadline and panics caught.
    fn execute(&self, sql: &str) -> Got {
        let sql = sql.to_string();
        let job: Box<dyn FnOnce() -> Result<QueryResult, Failure> + Send> = match self {
            Engine::Local { wh, .. } => {
                let wh = Arc::clone(wh);
                Box::new(move || {
                    wh.execute(&sql, &ctx()).map_err(|e| Failure {
                        unsupported: matches!(e, BqError::Unsupported { .. }),
                        message: e.to_string(),
                    })
                })
            }
            Engine::Peer { peer, dataset } => {
                let (peer, dataset) = (Arc::clone(peer), dataset.clone());
                Box::new(move || {
                    peer.execute(&sql, &dataset).map_err(|message| Failure {
                        unsupported: true,
                        message,
                    })
                })
            }
        };
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                let _ = tx.send(r);
            })
            .map_err(|e| e.to_string())?;
        match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err("panicked".into()),
            Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
        }
    }

    /// A copy of the prepared tables, for one DML statement: the local
    /// warehouse's directory copied, or the `prepared` statements run again
    /// in a new dataset of the peer.
    fn fork(&self, name: &str, prepared: &[String]) -> Result<Engine, Failure> {
        match self {
            Engine::Local { wh, .. } => {
                let local = |e: String| Failure {
                    unsupported: false,
                    message: format!("copying the prepared tables: {e}"),
                };
                let dir = tempfile::tempdir().map_err(|e| local(e.to_string()))?;
                copy_dir(wh.dir(), &dir.path().join("wh")).map_err(|e| local(e.to_string()))?;
                let wh = LocalWarehouse::open(dir.path().join("wh"))
                    .map_err(|e| local(e.to_string()))?;
                Ok(Engine::Local {
                    wh: Arc::new(wh),
                    _dir: dir,
                })
            }
            Engine::Peer { peer, .. } => {
                let failed = |message: String| Failure {
                    unsupported: true,
                    message: format!("copying the prepared tables: {message}"),
                };
                let copy = Engine::Peer {
                    peer: Arc::clone(peer),
                    dataset: peer.new_dataset(name).map_err(failed)?,
                };
                for sql in prepared {
                    match copy.execute(sql) {
                        Ok(Ok(_)) => {}
                        Ok(Err(f)) => return Err(failed(f.message)),
                        Err(e) => return Err(failed(e)),
                    }
                }
                Ok(copy)
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Engine::Peer { peer, dataset } = self {
            peer.drop_dataset(dataset);
        }
    }
}

fn short(s: &str) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.len() > 300 {
        format!("{}…", &one_line[..one_line.floor_char_boundary(300)])
    } else {
        one_line
    }
}

/// Classifies a statement's outcome against the expected one.
fn classify(
    expected: &Expected,
    got: Got,
    check: impl FnOnce(&Ty, &V, &QueryResult) -> Result<(), String>,
) -> Outcome {
    match (expected, got) {
        (_, Err(hang_or_panic)) => Outcome::Wrong(hang_or_panic),
        (Expected::Unreadable(why), _) => Outcome::Skipped(why.clone()),
        (Expected::Error(_), Ok(Err(_))) => Outcome::Pass,
        (Expected::Error(e), Ok(Ok(_))) => {
            Outcome::Wrong(format!("succeeded, expected error {}", short(e)))
        }
        (Expected::Value(..), Ok(Err(f))) if f.unsupported => {
            Outcome::Unsupported(short(&f.message))
        }
        (Expected::Value(..), Ok(Err(f))) => {
            Outcome::Wrong(format!("error: {}", short(&f.message)))
        }
        (Expected::Value(ty, v), Ok(Ok(result))) => match check(ty, v, &result) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Wrong(short(&e)),
        },
    }
}

/// Copies a directory tree (the prepared warehouse, for one DML case).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Runs every case of one `.test` file.
pub fn run_file(path: &Path, target: Target<'_>) -> FileResult {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases = parse_file(&text);
    let engine = match Engine::new(target, file.trim_end_matches(".test")) {
        Ok(e) => e,
        Err(e) => panic!("{file}: {e}"),
    };
    // The preparing statements that succeeded, in order (a peer's DML copy runs them again).
    let mut prepared: Vec<String> = Vec::new();
    let mut non_bq_columns: BTreeSet<String> = BTreeSet::new();
    // Tables whose preparation failed or was skipped: why.
    let mut unavailable: BTreeMap<String, Outcome> = BTreeMap::new();
    // Tables prepared with TIMESTAMP values that depend on the suite's
    // default time zone: the columns holding them (cases reading one are skipped).
    let mut zone_columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut results = Vec::new();
    for case in &cases {
        if case.prepare {
            let table = super::format::created_table(&case.sql).unwrap_or_default();
            let skip = skip_reason(
                &Case {
                    expected: Expected::Unreadable(String::new()),
                    ..case.clone()
                },
                &BTreeSet::new(),
            );
            let zone_only = skip
                .as_deref()
                .is_some_and(|why| why.starts_with(ZONE_DEPENDENT));
            // Only TIMESTAMP literals read in the zone: the other columns hold
            // BigQuery's values.
            // (`CAST('2014-01-01' AS DATE)` reads a literal, not a TIMESTAMP.)
            let literals_only =
                !converts_in_zone(&without_literal_casts(&case.sql.to_ascii_lowercase()));
            if zone_only
                && literals_only
                && let Some(columns) = timestamp_columns(&case.expected)
            {
                zone_columns.insert(table.to_ascii_lowercase(), columns);
            } else if let Some(why) = skip {
                unavailable.insert(
                    table,
                    Outcome::Skipped(format!(
                        "table prepared only with a non-BigQuery feature: {why}"
                    )),
                );
                continue;
            }
            let lower = case.sql.to_ascii_lowercase();
            if case.protos && (lower.contains("proto") || lower.contains("zetasql_test__")) {
                unavailable.insert(table, Outcome::Skipped("table of protocol buffers".into()));
                continue;
            }
            if let Expected::Value(Ty::Array(Some(row)), _) = &case.expected
                && let Ty::Struct(fields) = &**row
            {
                for (name, ty) in fields {
                    let mut names = Vec::new();
                    ty.names(&mut names);
                    if names.iter().any(|t| !BIGQUERY_TYPES.contains(&t.as_str()))
                        && let Some(n) = name
                    {
                        non_bq_columns.insert(n.clone());
                    }
                }
            }
            let mut sql = case.sql.clone();
            for (from, to) in MAPPED_TYPES {
                sql = replace_word(&sql, from, to);
            }
            let sql = without_uint64_literals(&sql);
            match engine.execute(&sql) {
                Ok(Ok(_)) => prepared.push(sql),
                other => {
                    let outcome = classify(&case.expected, other, |_, _, _| Ok(()));
                    let outcome = match outcome {
                        Outcome::Wrong(e) => Outcome::Wrong(format!("preparing {table}: {e}")),
                        Outcome::Unsupported(e) => {
                            Outcome::Unsupported(format!("preparing {table}: {e}"))
                        }
                        o => o,
                    };
                    unavailable.insert(table, outcome);
                }
            }
            continue;
        }
        let outcome = if let Some(why) = skip_reason(case, &non_bq_columns) {
            Outcome::Skipped(why)
        } else if let Some((_, o)) = unavailable.iter().find(|(t, _)| mentions(&case.sql, t)) {
            o.clone()
        } else if let Some(why) = zone_columns.iter().find_map(|(t, columns)| {
            if !mentions(&case.sql, t) {
                return None;
            }
            let read = columns.iter().find(|c| mentions(&case.sql, c));
            match read {
                Some(c) => Some(format!(
                    "reads {t}.{c}, prepared with TIMESTAMP values read in the suite's default time zone America/Los_Angeles (BigQuery's is UTC)"
                )),
                None if reads_star(&case.sql) => Some(format!(
                    "may read all columns of {t}, some prepared with TIMESTAMP values read in the suite's default time zone America/Los_Angeles (BigQuery's is UTC)"
                )),
                None => None,
            }
        }) {
            Outcome::Skipped(why)
        } else {
            let sql = substitute_parameters(&case.sql, &case.parameters);
            if is_dml(&sql) {
                run_dml(case, &sql, &engine, &prepared)
            } else {
                let got = engine.execute(&sql);
                if std::env::var("BIGFLOW_CONFORMANCE_CASE").as_deref() == Ok(case.name.as_str()) {
                    match &got {
                        Ok(Ok(r)) => println!(
                            "{sql}\n{}",
                            arrow::util::pretty::pretty_format_batches(&r.batches).unwrap()
                        ),
                        other => println!("{sql}\n{other:?}"),
                    }
                }
                classify(&case.expected, got, |ty, v, r| {
                    compare_rows(ty, v, &r.batches)
                })
            }
        };
        results.push(CaseResult {
            name: case.name.clone(),
            outcome,
        });
    }
    FileResult {
        file,
        cases: results,
    }
}

/// A DML case runs on a copy of the prepared tables; its result is the
/// number of rows changed and the table's rows afterwards.
fn run_dml(case: &Case, sql: &str, prepared: &Engine, statements: &[String]) -> Outcome {
    let Some(target) = dml_target(sql) else {
        return Outcome::Wrong("cannot tell the DML statement's table".into());
    };
    let wh = match prepared.fork(&case.name, statements) {
        Ok(copy) => copy,
        Err(f) if f.unsupported => return Outcome::Unsupported(short(&f.message)),
        Err(f) => return Outcome::Wrong(f.message),
    };
    let got = wh.execute(sql);
    let outcome = classify(&case.expected, got, |ty, v, result| {
        let (Ty::Struct(fields), V::Struct(_, values)) = (ty, v) else {
            return Err("expected a DML result STRUCT<num_rows_modified, all_rows>".into());
        };
        let (Some(V::Raw(n)), Some(rows), Some((_, rows_ty))) =
            (values.first(), values.get(1), fields.get(1))
        else {
            return Err("expected a DML result STRUCT<num_rows_modified, all_rows>".into());
        };
        let changed = result.affected_rows;
        if changed.map(|c| c.to_string()).as_deref() != Some(n.as_str()) {
            return Err(format!("{changed:?} rows modified, expected {n}"));
        }
        let all = match wh.execute(&format!("SELECT * FROM {target}")) {
            Ok(Ok(r)) => r,
            Ok(Err(f)) => return Err(format!("reading {target} back: {}", f.message)),
            Err(e) => return Err(e),
        };
        let rows_ty = match (rows_ty, rows) {
            (Ty::Array(None), V::Array(Some(t), ..)) => t.clone(),
            (t, _) => t.clone(),
        };
        compare_rows(&rows_ty, rows, &all.batches)
    });
    drop(wh);
    outcome
}

/// The `.test` files of `dir`, sorted.
pub fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "test"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The per-file table in Markdown, with totals.
pub fn markdown(results: &[FileResult]) -> String {
    let mut out = String::from(
        "| file | cases | pass | unsupported | wrong | skipped |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let mut total = [0usize; 5];
    for r in results {
        let c = r.counts();
        for (t, v) in total.iter_mut().zip(c) {
            *t += v;
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.file, c[0], c[1], c[2], c[3], c[4]
        ));
    }
    out.push_str(&format!(
        "| **total** | **{}** | **{}** | **{}** | **{}** | **{}** |\n",
        total[0], total[1], total[2], total[3], total[4]
    ));
    let run = total[0] - total[4];
    if run > 0 {
        out.push_str(&format!(
            "\nPass rate over non-skipped cases: {:.1} % ({} of {}).\n",
            100.0 * total[1] as f64 / run as f64,
            total[1],
            run
        ));
    }
    out
}

/// Ours and a peer's counts per file side by side, with totals and pass rates.
pub fn markdown_pair(ours: &[FileResult], peer: &[FileResult], peer_name: &str) -> String {
    let mut out = format!(
        "| file | cases | pass | unsupported | wrong | skipped | {peer_name} pass | {peer_name} unsupported | {peer_name} wrong | {peer_name} skipped |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    let mut total = [[0usize; 5]; 2];
    for r in ours {
        let a = r.counts();
        let b = peer
            .iter()
            .find(|p| p.file == r.file)
            .map(FileResult::counts)
            .unwrap_or_default();
        for (side, c) in [a, b].into_iter().enumerate() {
            for (t, v) in total[side].iter_mut().zip(c) {
                *t += v;
            }
        }
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.file, a[0], a[1], a[2], a[3], a[4], b[1], b[2], b[3], b[4]
        ));
    }
    let [a, b] = total;
    out.push_str(&format!(
        "| **total** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** | **{}** |\n",
        a[0], a[1], a[2], a[3], a[4], b[1], b[2], b[3], b[4]
    ));
    let rate = |c: &[usize; 5]| {
        let run = c[0] - c[4];
        if run == 0 {
            "—".to_string()
        } else {
            format!(
                "{:.1} % ({} of {})",
                100.0 * c[1] as f64 / run as f64,
                c[1],
                run
            )
        }
    };
    out.push_str(&format!(
        "\nPass rate over non-skipped cases: ours {}, {peer_name} {}.\n",
        rate(&a),
        rate(&b)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint64_literals_are_prepared_as_null() {
        assert_eq!(
            without_uint64_literals(
                "SELECT 18446744073709551615 u, 9223372036854775807 i, -9223372036854775808 m, \
                 1.8446744073709551615 f, '18446744073709551615' s, x18446744073709551615"
            ),
            "SELECT NULL u, 9223372036854775807 i, -9223372036854775808 m, \
             1.8446744073709551615 f, '18446744073709551615' s, x18446744073709551615"
        );
    }

    #[test]
    fn casts_of_literals_read_text() {
        let sql = "select cast('2014-01-01' as date) as d, cast( \"1\" as string), cast(ts as date), cast(null as date)";
        assert_eq!(
            without_literal_casts(sql),
            "select  as d, , cast(ts as date), "
        );
        assert!(!converts_in_zone(&without_literal_casts(
            "select cast('2014-01-01' as date)"
        )));
    }

    #[test]
    fn count_star_reads_no_column() {
        assert!(reads_star("SELECT * FROM t"));
        assert!(reads_star("SELECT t.* FROM t"));
        assert!(!reads_star("SELECT COUNT( * ) FROM t"));
    }

    #[test]
    fn words_and_parameters() {
        assert!(mentions("SELECT int32_val FROM t", "INT32_VAL"));
        assert!(!mentions("SELECT int32_value FROM t", "int32_val"));
        assert_eq!(
            replace_word("CAST(1 AS int32), int32_val", "int32", "INT64"),
            "CAST(1 AS INT64), int32_val"
        );
        assert_eq!(
            substitute_parameters(
                "select json_extract(x, @path), @p",
                &[("'$.a'".into(), "path".into()), ("1".into(), "p".into())]
            ),
            "select json_extract(x, ('$.a')), (1)"
        );
        assert_eq!(
            dml_target("INSERT INTO Table1 (a) VALUES (1)").as_deref(),
            Some("Table1")
        );
        assert_eq!(
            dml_target("DELETE Table1 WHERE true").as_deref(),
            Some("Table1")
        );
    }
}
