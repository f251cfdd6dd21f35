//! BigQuery SQL → what DataFusion plans.
//!
//! Statements are parsed with sqlparser's BigQuery dialect and the AST is
//! rewritten in place:
//! - table names (`` `p.d.t` ``, `d.t`, `t`) are resolved against the query's
//!   default dataset and replaced by per-query names (`__bq_t0`, …) under
//!   which the warehouse registers the tables; a table without alias keeps
//!   its short name as alias, as BigQuery allows `t.col`;
//! - BigQuery types (INT64, FLOAT64, BYTES, DATETIME, TIMESTAMP, NUMERIC, …)
//!   become the DataFusion types of [`crate::schema`];
//! - BigQuery functions become DataFusion functions or the `bq_*` UDFs of
//!   [`super::functions`] (date parts and `INTERVAL n PART` arguments turn
//!   into plain values);
//! - `UNNEST(a) AS x` names its column `x`; `x IN UNNEST(a)` becomes `array_has`;
//! - `_PARTITIONTIME`/`_PARTITIONDATE` are noted so the warehouse exposes them;
//! - column names and aliases are matched without regard to case, as in
//!   BigQuery ([`fold_case`], once the tables' columns are known).
//!
//! Functions that are neither DataFusion's nor rewritten are rejected here,
//! with their position, before planning.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::Spanned;
use datafusion::sql::sqlparser::ast::{
    self, CaseWhen, CastKind, DataType as SqlType, ExactNumberInfo, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart,
    Query, Statement, TableAlias, TableAliasColumnDef, TableFactor, TimezoneInfo, UnaryOperator,
    Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::BigQueryDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Span};

use crate::backend::QueryContext;
use crate::error::{BqError, Position, Result};
use crate::names::TableId;

/// Spells every column reference as its column or alias is spelled, when it
/// differs only in case (BigQuery's names are case-insensitive; DataFusion's
/// are not). `columns` are the columns of the tables the query reads; the
/// query's own aliases (select items, tables, CTEs) count too. A name two
/// different spellings share is left as written.
pub fn fold_case(query: &mut Query, columns: &[String]) {
    struct Names(Vec<String>);
    impl VisitorMut for Names {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                self.0
                    .extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
            }
            if let ast::SetExpr::Select(select) = q.body.as_ref() {
                for item in &select.projection {
                    if let ast::SelectItem::ExprWithAlias { alias, .. } = item {
                        self.0.push(alias.value.clone());
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            let alias = match t {
                TableFactor::Table { alias, .. }
                | TableFactor::Derived { alias, .. }
                | TableFactor::UNNEST { alias, .. } => alias.as_ref(),
                _ => None,
            };
            if let Some(a) = alias {
                self.0.push(a.name.value.clone());
                self.0
                    .extend(a.columns.iter().map(|c| c.name.value.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    struct Fold(std::collections::HashMap<String, Option<String>>);
    impl Fold {
        fn fix(&self, i: &mut Ident) {
            if let Some(Some(name)) = self.0.get(&i.value.to_lowercase())
                && *name != i.value
            {
                i.value = name.clone();
            }
        }
    }
    impl VisitorMut for Fold {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            match e {
                Expr::Identifier(i) => self.fix(i),
                Expr::CompoundIdentifier(parts) => parts.iter_mut().for_each(|i| self.fix(i)),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(columns.to_vec());
    let _ = query.visit(&mut names);
    let mut spellings: std::collections::HashMap<String, Option<String>> = Default::default();
    for name in names.0 {
        spellings
            .entry(name.to_lowercase())
            .and_modify(|s| {
                if s.as_deref() != Some(name.as_str()) {
                    *s = None;
                }
            })
            .or_insert(Some(name));
    }
    let _ = query.visit(&mut Fold(spellings));
}

/// Parses BigQuery SQL into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let statements = Parser::parse_sql(&BigQueryDialect {}, sql).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .strip_prefix("sql parser error: ")
            .unwrap_or(&msg)
            .to_string();
        let (message, mut position) = split_position(&msg);
        if position.is_none() && message.contains("found: EOF") {
            position = Some(end_of(sql));
        }
        BqError::Sql { message, position }
    })?;
    if statements.is_empty() {
        return Err(BqError::Sql {
            message: "the SQL is empty".into(),
            position: None,
        });
    }
    for s in &statements {
        super::limits::check_nesting(s)?;
    }
    Ok(statements)
}

/// The position just after the last character of `sql`.
fn end_of(sql: &str) -> Position {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed
        .lines()
        .last()
        .map(|l| l.chars().count())
        .unwrap_or(0) as u64
        + 1;
    Position { line, column }
}

/// Splits "… at Line: 3, Column: 7" off a parser message.
fn split_position(msg: &str) -> (String, Option<Position>) {
    if let Some(i) = msg.rfind(" at Line: ") {
        let rest = &msg[i + " at Line: ".len()..];
        if let Some((line, col)) = rest.split_once(", Column: ")
            && let (Ok(line), Ok(column)) = (line.trim().parse(), col.trim().parse())
        {
            return (msg[..i].to_string(), Some(Position { line, column }));
        }
    }
    (msg.to_string(), None)
}

/// The position of a span's start, if it has one.
pub fn position(span: Span) -> Option<Position> {
    let Location { line, column } = span.start;
    (line > 0).then_some(Position { line, column })
}

/// A table a statement reads.
#[derive(Debug, Clone)]
pub struct TableRef {
    /// The table.
    pub id: TableId,
    /// The name it is registered under for this statement.
    pub name: String,
    /// Where the SQL first names it.
    pub position: Option<Position>,
}

/// The object name's text: parts joined by '.', quotes removed.
pub fn object_name_text(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The span of an object name's first part.
pub fn object_name_span(name: &ObjectName) -> Span {
    match name.0.first() {
        Some(ObjectNamePart::Identifier(i)) => i.span,
        _ => Span::empty(),
    }
}

/// Resolves a table name of the SQL.
pub fn resolve(name: &ObjectName, ctx: &QueryContext) -> Result<TableId> {
    TableId::parse(
        &object_name_text(name),
        &ctx.default_project,
        &ctx.default_dataset,
    )
    .map_err(|e| BqError::Sql {
        message: e.to_string(),
        position: position(object_name_span(name)),
    })
}

/// Rewrites one statement's AST for DataFusion.
pub struct Rewriter<'a> {
    ctx: &'a QueryContext,
    known_function: &'a (dyn Fn(&str) -> bool + Sync),
    ctes: HashSet<String>,
    /// Tables read, in order of first mention.
    pub tables: Vec<TableRef>,
    /// Whether `_PARTITIONTIME` or `_PARTITIONDATE` appear.
    pub pseudo_columns: bool,
}

impl<'a> Rewriter<'a> {
    /// A rewriter resolving names in `ctx`'s default dataset.
    pub fn new(ctx: &'a QueryContext, known_function: &'a (dyn Fn(&str) -> bool + Sync)) -> Self {
        Rewriter {
            ctx,
            known_function,
            ctes: HashSet::new(),
            tables: Vec::new(),
            pseudo_columns: false,
        }
    }

    /// Rewrites a query.
    pub fn rewrite_query(&mut self, query: &mut Query) -> Result<()> {
        match query.visit(self) {
            ControlFlow::Break(e) => Err(e),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    fn register(&mut self, id: TableId, pos: Option<Position>) -> String {
        if let Some(t) = self.tables.iter().find(|t| t.id == id) {
            return t.name.clone();
        }
        let name = format!("__bq_t{}", self.tables.len());
        self.tables.push(TableRef {
            id,
            name: name.clone(),
            position: pos,
        });
        name
    }
}

fn ident(s: &str) -> Ident {
    Ident::new(s)
}

fn string_lit(s: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(s.to_string()))
}

fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)))
}

/// `name(args…)`.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![ident(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn cast(expr: Expr, data_type: SqlType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

/// BigQuery type → a type DataFusion's planner knows, recursively.
pub fn fix_type(t: &mut SqlType) {
    match t {
        SqlType::Int64 | SqlType::Integer(_) | SqlType::Int(_) => *t = SqlType::BigInt(None),
        SqlType::Float64 | SqlType::Float(_) => *t = SqlType::Double(ExactNumberInfo::None),
        SqlType::Bytes(_) => *t = SqlType::Bytea,
        SqlType::JSON => *t = SqlType::String(None),
        SqlType::Datetime(_) => *t = SqlType::Timestamp(Some(6), TimezoneInfo::None),
        SqlType::Timestamp(_, _) => *t = SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
        SqlType::Time(_, _) => *t = SqlType::Time(None, TimezoneInfo::None),
        SqlType::Numeric(ExactNumberInfo::None) | SqlType::Decimal(ExactNumberInfo::None) => {
            *t = SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(38, 9))
        }
        SqlType::BigNumeric(_) | SqlType::BigDecimal(_) => {
            *t = SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(76, 38))
        }
        SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => fix_type(inner),
        SqlType::Struct(fields, _) => {
            for f in fields {
                fix_type(&mut f.field_type);
            }
        }
        _ => {}
    }
}

fn plain_args(f: &mut Function) -> Option<&mut Vec<FunctionArg>> {
    match &mut f.args {
        FunctionArguments::List(l) => Some(&mut l.args),
        _ => None,
    }
}

fn arg_expr(a: &FunctionArg) -> Option<&Expr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    }
}

/// `DAY` (an identifier) → `'DAY'`.
fn part_to_string(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Identifier(i) => Some(string_lit(&i.value.to_ascii_uppercase())),
        _ => None,
    }
}

/// `INTERVAL n PART` → (n, 'PART').
fn split_interval(e: &Expr) -> Option<(Expr, Expr)> {
    match e {
        Expr::Interval(iv) => {
            let part = iv.leading_field.as_ref()?.to_string();
            Some(((*iv.value).clone(), string_lit(&part.to_ascii_uppercase())))
        }
        _ => None,
    }
}

fn unsupported(construct: String, span: Span) -> BqError {
    BqError::Unsupported {
        construct,
        position: position(span),
    }
}

impl Rewriter<'_> {
    /// The replacement of a function call, if BigQuery's differs from DataFusion's.
    fn rewrite_function(&mut self, f: &mut Function) -> Result<Option<Expr>> {
        let span = object_name_span(&f.name);
        let full = object_name_text(&f.name);
        // `SAFE.f(…)`: NULL instead of an error, for the parse functions.
        let safe = match full.to_ascii_lowercase().split_once('.') {
            Some(("safe", inner))
                if matches!(inner, "parse_date" | "parse_timestamp" | "parse_datetime") =>
            {
                f.name = ObjectName::from(vec![Ident::with_span(span, inner)]);
                true
            }
            Some(("safe", _)) => {
                return Err(unsupported(
                    format!(
                        "function {full} (SAFE. works with PARSE_DATE, PARSE_TIMESTAMP and PARSE_DATETIME; see also SAFE_CAST, SAFE_DIVIDE)"
                    ),
                    span,
                ));
            }
            _ => false,
        };
        let full = object_name_text(&f.name);
        if f.name.0.len() != 1 {
            return Err(unsupported(format!("function {full}"), span));
        }
        let name = full.to_ascii_lowercase();
        f.name = ObjectName::from(vec![Ident::with_span(span, name.clone())]);
        let bad_args = |what: &str| {
            unsupported(
                format!(
                    "{} with these arguments (expected {what})",
                    name.to_uppercase()
                ),
                span,
            )
        };
        let args: Vec<Expr> = match &f.args {
            FunctionArguments::List(l) => l.args.iter().filter_map(arg_expr).cloned().collect(),
            _ => vec![],
        };
        let replaced = match name.as_str() {
            "current_timestamp" => Some(call("bq_current_timestamp", vec![])),
            "timestamp_diff" | "datetime_diff" | "date_diff" => {
                if args.len() != 3 {
                    return Err(bad_args("(a, b, DATE_PART)"));
                }
                let part = part_to_string(&args[2])
                    .ok_or_else(|| bad_args("a date part as third argument"))?;
                let udf = if name == "date_diff" {
                    "bq_date_diff"
                } else {
                    "bq_timestamp_diff"
                };
                Some(call(udf, vec![args[0].clone(), args[1].clone(), part]))
            }
            "timestamp_add" | "timestamp_sub" | "datetime_add" | "datetime_sub" | "date_add"
            | "date_sub" => {
                if args.len() != 2 {
                    return Err(bad_args("(value, INTERVAL n PART)"));
                }
                let (n, part) = split_interval(&args[1])
                    .ok_or_else(|| bad_args("INTERVAL n PART as second argument"))?;
                let n = if name.ends_with("_sub") {
                    Expr::UnaryOp {
                        op: UnaryOperator::Minus,
                        expr: Box::new(Expr::Nested(Box::new(n))),
                    }
                } else {
                    n
                };
                let udf = if name.starts_with("date_") {
                    "bq_date_add"
                } else {
                    "bq_timestamp_add"
                };
                Some(call(
                    udf,
                    vec![args[0].clone(), cast(n, SqlType::BigInt(None)), part],
                ))
            }
            "format_timestamp" | "parse_timestamp" if args.len() == 3 => {
                let udf = match (name.as_str(), safe) {
                    ("format_timestamp", _) => "bq_format_timestamp_tz",
                    (_, false) => "bq_parse_timestamp_tz",
                    (_, true) => "bq_safe_parse_timestamp_tz",
                };
                Some(call(udf, args))
            }
            "format_date" | "format_timestamp" | "format_datetime" | "parse_date"
            | "parse_timestamp" | "parse_datetime" => {
                if args.len() != 2 {
                    return Err(bad_args(
                        "(format, value), and a time zone only for FORMAT_TIMESTAMP and PARSE_TIMESTAMP",
                    ));
                }
                let udf = match (name.as_str(), safe) {
                    ("format_date", _) => "bq_format_date",
                    ("format_timestamp" | "format_datetime", _) => "bq_format_timestamp",
                    ("parse_date", false) => "bq_parse_date",
                    ("parse_date", true) => "bq_safe_parse_date",
                    (_, false) => "bq_parse_timestamp",
                    (_, true) => "bq_safe_parse_timestamp",
                };
                Some(call(udf, args))
            }
            "safe_divide" => Some(call("bq_safe_divide", args)),
            "countif" => {
                if args.len() != 1 {
                    return Err(bad_args("one condition"));
                }
                let mut g = f.clone();
                g.name = ObjectName::from(vec![ident("count")]);
                if let Some(a) = plain_args(&mut g) {
                    *a = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(call(
                        "nullif",
                        vec![args[0].clone(), Expr::value(Value::Boolean(false))],
                    )))];
                }
                Some(Expr::Function(g))
            }
            "ifnull" => Some(call("coalesce", args)),
            "if" => {
                if args.len() != 3 {
                    return Err(bad_args("(condition, then, else)"));
                }
                Some(Expr::Case {
                    case_token: ast::helpers::attached_token::AttachedToken::empty(),
                    end_token: ast::helpers::attached_token::AttachedToken::empty(),
                    operand: None,
                    conditions: vec![CaseWhen {
                        condition: args[0].clone(),
                        result: args[1].clone(),
                    }],
                    else_result: Some(Box::new(args[2].clone())),
                })
            }
            "date" if args.len() == 1 => Some(cast(args[0].clone(), SqlType::Date)),
            "date" if args.len() == 3 => Some(call("make_date", args)),
            // (timestamp, zone): the wall clock of the instant in the zone.
            "date" if args.len() == 2 => Some(cast(call("bq_to_zone", args), SqlType::Date)),
            "datetime" if args.len() == 2 && is_string_literal(&args[1]) => {
                Some(call("bq_to_zone", args))
            }
            "timestamp" if args.len() == 2 => Some(call(
                "bq_from_zone",
                vec![
                    cast(
                        args[0].clone(),
                        SqlType::Timestamp(Some(6), TimezoneInfo::None),
                    ),
                    args[1].clone(),
                ],
            )),
            "timestamp" if args.len() == 1 => Some(cast(
                args[0].clone(),
                SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
            )),
            "datetime" if args.len() == 1 => Some(cast(
                args[0].clone(),
                SqlType::Timestamp(Some(6), TimezoneInfo::None),
            )),
            "timestamp_trunc" | "datetime_trunc" | "date_trunc" if args.len() == 2 => {
                let part = match &args[1] {
                    Expr::Identifier(i) => string_lit(&i.value.to_ascii_lowercase()),
                    _ => return Err(bad_args("(value, DATE_PART)")),
                };
                let truncated = call("date_trunc", vec![part, args[0].clone()]);
                Some(if name == "date_trunc" {
                    cast(truncated, SqlType::Date)
                } else {
                    truncated
                })
            }
            "regexp_contains" => Some(call("regexp_like", args)),
            // BigQuery replaces every match; DataFusion only the first without 'g'.
            "regexp_replace" if args.len() == 3 => {
                let mut a = args;
                a.push(string_lit("g"));
                Some(call("regexp_replace", a))
            }
            "split" if args.len() == 1 => Some(call(
                "string_to_array",
                vec![args[0].clone(), string_lit(",")],
            )),
            "split" => Some(call("string_to_array", args)),
            "logical_and" => {
                f.name = ObjectName::from(vec![ident("bool_and")]);
                None
            }
            "logical_or" => {
                f.name = ObjectName::from(vec![ident("bool_or")]);
                None
            }
            "approx_count_distinct" => {
                f.name = ObjectName::from(vec![ident("approx_distinct")]);
                None
            }
            "any_value" => {
                f.name = ObjectName::from(vec![ident("first_value")]);
                None
            }
            "generate_uuid" => Some(call("uuid", vec![])),
            "mod" if args.len() == 2 => Some(Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(args[0].clone()),
                op: ast::BinaryOperator::Modulo,
                right: Box::new(args[1].clone()),
            }))),
            "timestamp_seconds" | "timestamp_millis" | "timestamp_micros" if args.len() == 1 => {
                let f = match name.as_str() {
                    "timestamp_seconds" => "to_timestamp_seconds",
                    "timestamp_millis" => "to_timestamp_millis",
                    _ => "to_timestamp_micros",
                };
                Some(cast(
                    call(f, args),
                    SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                ))
            }
            _ => None,
        };
        if replaced.is_none() {
            let current = object_name_text(&f.name);
            // UNNEST and STRUCT are planned by DataFusion's SQL planner itself.
            let planner_builtin = matches!(current.as_str(), "unnest" | "struct");
            if !planner_builtin && !(self.known_function)(&current) {
                return Err(unsupported(
                    format!("function {}", full.to_uppercase()),
                    span,
                ));
            }
        }
        Ok(replaced)
    }
}

fn is_pseudo(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("_PARTITIONTIME") {
        Some("_PARTITIONTIME")
    } else if name.eq_ignore_ascii_case("_PARTITIONDATE") {
        Some("_PARTITIONDATE")
    } else {
        None
    }
}

/// `t, UNNEST(t.arr) AS x` / `t CROSS JOIN UNNEST(t.arr) AS x` →
/// `(SELECT t.*, UNNEST(t.arr) AS x FROM t) AS t`: DataFusion cannot plan an
/// UNNEST that refers to a column of a table before it.
///
/// `WITH OFFSET AS o` adds `UNNEST(range(0, cardinality(arr))) AS o` (two
/// UNNESTs in one projection advance together). `left` (`LEFT JOIN
/// UNNEST`) keeps rows whose array is empty or NULL, with NULL for `x` and
/// `o`, by unnesting `[NULL]` for them.
fn wrap_unnest(rel: &TableFactor, unnest: &TableFactor, left: bool) -> Result<TableFactor> {
    let u = OneUnnest::of(unnest, "after a table")?;
    let Some(x) = u.alias.map(|a| a.name.clone()) else {
        return Err(u.unsupported("UNNEST without an alias after a table (write UNNEST(…) AS x)"));
    };
    let rel_alias = match rel {
        TableFactor::Table { name, alias, .. } => match alias {
            Some(a) => a.name.value.clone(),
            None => object_name_text(name)
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_string(),
        },
        TableFactor::Derived { alias: Some(a), .. } => a.name.value.clone(),
        _ => {
            return Err(u.unsupported("UNNEST after this kind of FROM item (give it an alias)"));
        }
    };
    let ra = format!("`{}`", rel_alias.replace('`', ""));
    let expr = u.expr;
    let offsets = u.offsets();
    let (values, offsets) = if left {
        let some = format!("COALESCE(cardinality({expr}), 0) > 0");
        (
            format!("CASE WHEN {some} THEN {expr} ELSE make_array(NULL) END"),
            format!("CASE WHEN {some} THEN {offsets} ELSE make_array(NULL) END"),
        )
    } else {
        (expr.to_string(), offsets)
    };
    let offset = match &u.offset {
        Some(o) => format!(", UNNEST({offsets}) AS {o}"),
        None => String::new(),
    };
    u.parse(&format!(
        "(SELECT {ra}.*, UNNEST({values}) AS {x}{offset} FROM {rel}) AS {ra}"
    ))
}

/// A FROM item `UNNEST(arr) AS x WITH OFFSET AS o` on its own →
/// `(SELECT UNNEST(arr) AS x, UNNEST(range(0, cardinality(arr))) AS o) AS x`
/// (DataFusion has no WITH OFFSET).
fn offset_unnest(unnest: &TableFactor) -> Result<TableFactor> {
    let u = OneUnnest::of(unnest, "WITH OFFSET")?;
    let x = u
        .alias
        .map_or_else(|| "`f0_`".to_string(), |a| a.name.to_string());
    let o = u.offset.clone().unwrap_or_else(|| "`offset`".into());
    u.parse(&format!(
        "(SELECT UNNEST({expr}) AS {x}, UNNEST({offsets}) AS {o}) AS {x}",
        expr = u.expr,
        offsets = u.offsets()
    ))
}

/// An `UNNEST` of one array, as the two rewrites above take it.
struct OneUnnest<'a> {
    expr: &'a Expr,
    alias: Option<&'a TableAlias>,
    /// The offset column's name, with `WITH OFFSET` (default `offset`).
    offset: Option<String>,
}

impl<'a> OneUnnest<'a> {
    fn of(unnest: &'a TableFactor, place: &str) -> Result<OneUnnest<'a>> {
        let TableFactor::UNNEST {
            alias,
            array_exprs,
            with_offset,
            with_offset_alias,
            ..
        } = unnest
        else {
            return Err(BqError::Engine("not an UNNEST".into()));
        };
        let [expr] = array_exprs.as_slice() else {
            return Err(BqError::Unsupported {
                construct: format!("UNNEST of several arrays {place}"),
                position: array_exprs.first().map(|e| e.span()).and_then(position),
            });
        };
        Ok(OneUnnest {
            expr,
            alias: alias.as_ref(),
            offset: with_offset.then(|| {
                with_offset_alias
                    .as_ref()
                    .map_or_else(|| "`offset`".to_string(), ToString::to_string)
            }),
        })
    }

    fn unsupported(&self, what: &str) -> BqError {
        BqError::Unsupported {
            construct: what.to_string(),
            position: position(self.expr.span()),
        }
    }

    /// The array's positions, 0-based: `range(0, cardinality(arr))`.
    fn offsets(&self) -> String {
        format!("range(0, CAST(cardinality({}) AS INT64))", self.expr)
    }

    /// The rewritten FROM item.
    fn parse(&self, sql: &str) -> Result<TableFactor> {
        Parser::new(&BigQueryDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_table_factor())
            .map_err(|e| BqError::Sql {
                message: format!("rewriting UNNEST: {e}"),
                position: position(self.expr.span()),
            })
    }
}

fn is_unnest(t: &TableFactor) -> bool {
    matches!(t, TableFactor::UNNEST { .. })
}

/// Applies [`wrap_unnest`] to every UNNEST that follows a table in FROM.
fn lateral_unnest(select: &mut ast::Select) -> Result<()> {
    use ast::{JoinConstraint, JoinOperator};
    // `ON TRUE`, or no condition: what BigQuery allows after a join to UNNEST.
    let on_true = |c: &JoinConstraint| match c {
        JoinConstraint::None => true,
        JoinConstraint::On(e) => {
            matches!(e, Expr::Value(v) if v.value == ast::Value::Boolean(true))
        }
        _ => false,
    };
    for twj in &mut select.from {
        while let Some(first) = twj.joins.first() {
            let (cross, left) = match &first.join_operator {
                JoinOperator::CrossJoin(c) | JoinOperator::Join(c) | JoinOperator::Inner(c) => {
                    (on_true(c), false)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (false, on_true(c)),
                _ => (false, false),
            };
            if !(is_unnest(&first.relation) && (cross || left)) || is_unnest(&twj.relation) {
                break;
            }
            let j = twj.joins.remove(0);
            twj.relation = wrap_unnest(&twj.relation, &j.relation, left)?;
        }
        if let Some(j) = twj.joins.iter().find(|j| is_unnest(&j.relation))
            && !is_unnest(&twj.relation)
        {
            return Err(BqError::Unsupported {
                construct: format!(
                    "{} UNNEST after a join (move the join into a subquery)",
                    j.join_operator_name()
                ),
                position: None,
            });
        }
    }
    let mut i = 1;
    while i < select.from.len() {
        let prev_simple =
            select.from[i - 1].joins.is_empty() && !is_unnest(&select.from[i - 1].relation);
        if is_unnest(&select.from[i].relation) && select.from[i].joins.is_empty() && prev_simple {
            let u = select.from.remove(i);
            let prev = &mut select.from[i - 1];
            prev.relation = wrap_unnest(&prev.relation, &u.relation, false)?;
        } else {
            i += 1;
        }
    }
    Ok(())
}

trait JoinName {
    fn join_operator_name(&self) -> &'static str;
}

impl JoinName for ast::Join {
    fn join_operator_name(&self) -> &'static str {
        use ast::JoinOperator::*;
        match self.join_operator {
            Left(_) | LeftOuter(_) => "LEFT JOIN",
            Right(_) | RightOuter(_) => "RIGHT JOIN",
            FullOuter(_) => "FULL JOIN",
            _ => "JOIN",
        }
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = BqError;

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<BqError> {
        match lateral_unnest(select) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<BqError> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<BqError> {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                let span = object_name_span(name);
                if args.is_some() {
                    return ControlFlow::Break(unsupported(
                        format!("table function {}", object_name_text(name)),
                        span,
                    ));
                }
                let text = object_name_text(name);
                if name.0.len() == 1
                    && !text.contains('.')
                    && self.ctes.contains(&text.to_ascii_lowercase())
                {
                    return ControlFlow::Continue(());
                }
                let id = match TableId::parse(
                    &text,
                    &self.ctx.default_project,
                    &self.ctx.default_dataset,
                ) {
                    Ok(id) => id,
                    Err(e) => {
                        return ControlFlow::Break(BqError::Sql {
                            message: e.to_string(),
                            position: position(span),
                        });
                    }
                };
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: ident(&id.table),
                        columns: vec![],
                        at: None,
                    });
                }
                let registered = self.register(id, position(span));
                *name = ObjectName::from(vec![Ident::with_span(span, registered)]);
            }
            TableFactor::UNNEST {
                with_offset: true, ..
            } => match offset_unnest(factor) {
                Ok(derived) => *factor = derived,
                Err(e) => return ControlFlow::Break(e),
            },
            TableFactor::UNNEST { alias: Some(a), .. } if a.columns.is_empty() => {
                a.columns = vec![TableAliasColumnDef::from_name(a.name.value.clone())];
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<BqError> {
        let replacement = match expr {
            Expr::Identifier(i) => {
                if let Some(p) = is_pseudo(&i.value) {
                    i.value = p.to_string();
                    self.pseudo_columns = true;
                }
                None
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last_mut()
                    && let Some(p) = is_pseudo(&last.value)
                {
                    last.value = p.to_string();
                    self.pseudo_columns = true;
                }
                None
            }
            Expr::Cast { data_type, .. } => {
                fix_type(data_type);
                None
            }
            Expr::TypedString(ts) => {
                fix_type(&mut ts.data_type);
                None
            }
            Expr::Struct { fields, .. } => {
                for f in fields {
                    fix_type(&mut f.field_type);
                }
                None
            }
            Expr::InUnnest {
                expr: e,
                array_expr,
                negated,
            } => {
                let has = call("array_has", vec![(**array_expr).clone(), (**e).clone()]);
                Some(if *negated {
                    Expr::UnaryOp {
                        op: UnaryOperator::Not,
                        expr: Box::new(has),
                    }
                } else {
                    has
                })
            }
            Expr::Function(f) => match self.rewrite_function(f) {
                Ok(r) => r,
                Err(e) => return ControlFlow::Break(e),
            },
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> QueryContext {
        QueryContext {
            default_project: "p".into(),
            default_dataset: "d".into(),
            ..QueryContext::default()
        }
    }

    fn rewrite(sql: &str) -> Result<(String, Rewriter<'static>)> {
        let mut stmts = parse(sql)?;
        let Statement::Query(q) = &mut stmts[0] else {
            panic!("not a query")
        };
        let c: &'static QueryContext = Box::leak(Box::new(ctx()));
        let mut r = Rewriter::new(c, &|_| true);
        r.rewrite_query(q)?;
        Ok((q.to_string(), r))
    }

    #[test]
    fn names_are_folded_to_one_spelling_unless_ambiguous() {
        let fold = |sql: &str, columns: &[&str]| {
            let Statement::Query(mut q) = parse(sql).unwrap().remove(0) else {
                panic!("not a query")
            };
            let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            fold_case(&mut q, &columns);
            q.to_string()
        };
        assert_eq!(
            fold(
                "SELECT portname, T.Country AS Total FROM t ORDER BY TOTAL",
                &["PortName", "country"]
            ),
            "SELECT PortName, T.country AS Total FROM t ORDER BY Total"
        );
        // Two spellings: left as written.
        assert_eq!(fold("SELECT id FROM t", &["ID", "Id"]), "SELECT id FROM t");
    }

    #[test]
    fn resolves_tables_and_keeps_ctes() {
        let (sql, r) = rewrite(
            "WITH x AS (SELECT * FROM `p2.d2.t2`) SELECT t.a FROM `t` JOIN x ON TRUE JOIN d.t ON TRUE",
        )
        .unwrap();
        assert_eq!(r.tables.len(), 2, "{sql}");
        assert_eq!(r.tables[0].id.to_string(), "p2.d2.t2");
        assert_eq!(r.tables[1].id.to_string(), "p.d.t");
        assert!(sql.contains("FROM __bq_t1 AS t JOIN x"), "{sql}");
    }

    #[test]
    fn rewrites_functions_types_and_pseudo_columns() {
        let (sql, r) = rewrite(
            "SELECT TIMESTAMP_DIFF(CURRENT_TIMESTAMP(), _partitiontime, MINUTE), DATE_SUB(d, INTERVAL 3 DAY), \
             CAST(x AS INT64), COUNTIF(y > 1), IFNULL(a, b) FROM t",
        )
        .unwrap();
        assert!(r.pseudo_columns);
        assert!(
            sql.contains("bq_timestamp_diff(bq_current_timestamp(), _PARTITIONTIME, 'MINUTE')"),
            "{sql}"
        );
        assert!(
            sql.contains("bq_date_add(d, CAST(-(3) AS BIGINT), 'DAY')"),
            "{sql}"
        );
        assert!(sql.contains("CAST(x AS BIGINT)"), "{sql}");
        assert!(sql.contains("count(nullif(y > 1, false))"), "{sql}");
        assert!(sql.contains("coalesce(a, b)"), "{sql}");
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = parse("SELECT a\nFROM t WHERE").unwrap_err();
        match e {
            BqError::Sql { position, .. } => assert_eq!(position.map(|p| p.line), Some(2)),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn unknown_functions_are_unsupported_with_position() {
        let mut stmts = parse("SELECT\n  FARM_FINGERPRINT(a) FROM t").unwrap();
        let Statement::Query(q) = &mut stmts[0] else {
            panic!()
        };
        let c = ctx();
        let known = |n: &str| n == "count";
        let mut r = Rewriter::new(&c, &known);
        let e = r.rewrite_query(q).unwrap_err().to_string();
        assert!(
            e.contains("function FARM_FINGERPRINT") && e.contains("line 2, column 3"),
            "{e}"
        );
    }
}
