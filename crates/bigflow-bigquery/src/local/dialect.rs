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
//! - `UNNEST(a) AS x` names its column `x`; `x IN UNNEST(a)` becomes `bq_in_array`;
//! - `_PARTITIONTIME`/`_PARTITIONDATE` are noted so the warehouse exposes them;
//! - column names and aliases are matched without regard to case, as in
//!   BigQuery ([`fold_case`], once the tables' columns are known).
//!
//! - string and bytes literals get GoogleSQL's escapes ([`super::literals`]),
//!   typed array literals `ARRAY<T>[…]` become casts, `arr[OFFSET(i)]` and
//!   its kin `bq_array_at`, `EXTRACT` `bq_extract`, conditions of `IF`/`CASE
//!   WHEN` are checked to be BOOL, unnamed select items are named `f0_`, …;
//! - what BigQuery refuses is refused here: literal NULL operands of
//!   arithmetic and `NOT`, fractional `INTERVAL` counts, analytic functions
//!   without `OVER`.
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
use datafusion::sql::sqlparser::dialect::{BigQueryDialect, Dialect};
use datafusion::sql::sqlparser::parser::{Parser, ParserError, ParserOptions};
use datafusion::sql::sqlparser::tokenizer::{Location, Span};

use super::json::Kind;
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

/// Tells the JSON functions what a column argument is, once the tables'
/// columns are known (see [`Kind`]): `kinds` maps column and field names to
/// `JSON`, `STRING` or another type (`None`: two columns of that name
/// differ). A name the query itself defines (an alias, a CTE) is left as
/// "either".
pub fn json_column_kinds(
    query: &mut Query,
    kinds: &std::collections::HashMap<String, Option<&'static str>>,
) {
    if !kinds.values().any(|k| matches!(k, Some("JSON" | "STRING"))) {
        return;
    }
    let defined: HashSet<String> = query_names(query)
        .into_iter()
        .map(|n| n.to_lowercase())
        .collect();
    let kind_of = |e: &Expr| -> Option<&'static str> {
        let name = match e {
            Expr::Identifier(i) => &i.value,
            Expr::CompoundIdentifier(parts) => &parts.last()?.value,
            _ => return None,
        };
        let name = name.to_lowercase();
        if defined.contains(&name) {
            return None;
        }
        match kinds.get(&name).copied().flatten()? {
            "JSON" => Some("JSON"),
            "STRING" => Some("STRING"),
            _ => None,
        }
    };
    struct Fix<'a> {
        kind_of: &'a dyn Fn(&Expr) -> Option<&'static str>,
    }
    impl VisitorMut for Fix<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let Expr::Function(f) = e else {
                return ControlFlow::Continue(());
            };
            let name = object_name_text(&f.name);
            let FunctionArguments::List(l) = &mut f.args else {
                return ControlFlow::Continue(());
            };
            let args: Vec<Option<Expr>> = l.args.iter().map(|a| arg_expr(a).cloned()).collect();
            let lit_text = |e: &Option<Expr>| match e {
                Some(Expr::Value(v)) => match &v.value {
                    Value::SingleQuotedString(s) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            };
            match name.as_str() {
                // (value, path, kind)
                "bq_json_query"
                | "bq_json_extract"
                | "bq_json_value"
                | "bq_json_extract_scalar"
                | "bq_json_query_array"
                | "bq_json_extract_array"
                | "bq_json_value_array"
                | "bq_json_extract_string_array"
                    if args.len() == 3 && lit_text(&args[2]).as_deref() == Some("ANY") =>
                {
                    if let Some(k) = args[0].as_ref().and_then(|a| (self.kind_of)(a)) {
                        l.args[2] = FunctionArg::Unnamed(FunctionArgExpr::Expr(string_lit(k)));
                    }
                }
                // (kinds, …): the kinds of the call's arguments in order.
                "bq_json_array"
                | "bq_json_object"
                | "bq_safe_json_object"
                | "bq_json_set"
                | "bq_json_array_insert"
                | "bq_json_array_append" => {
                    let Some(text) = args.first().and_then(lit_text) else {
                        return ControlFlow::Continue(());
                    };
                    let mut kinds: Vec<String> = text.split(',').map(str::to_string).collect();
                    for (i, k) in kinds.iter_mut().enumerate() {
                        // Where the i-th argument of the SQL call is now.
                        let at = match name.as_str() {
                            "bq_json_array" | "bq_json_object" | "bq_safe_json_object" => i + 1,
                            _ if i == 0 => 1,
                            _ => i + 2,
                        };
                        if k == "ANY"
                            && let Some(Some(a)) = args.get(at)
                            && let Some(found) = (self.kind_of)(a)
                        {
                            *k = found.to_string();
                        }
                    }
                    l.args[0] =
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(string_lit(&kinds.join(","))));
                }
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let _ = query.visit(&mut Fix { kind_of: &kind_of });
}

/// The names a query defines: CTEs, select-list and table aliases, the
/// columns of aliases, and STRUCT field names (so that a planner's "no
/// field named x" can be told from a name the query never had).
pub fn query_names(query: &Query) -> Vec<String> {
    use ast::{Visit, Visitor};
    struct Names(Vec<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                self.0
                    .extend(with.cte_tables.iter().map(|c| c.alias.name.value.clone()));
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_select(&mut self, select: &ast::Select) -> ControlFlow<()> {
            for item in &select.projection {
                if let ast::SelectItem::ExprWithAlias { alias, .. } = item {
                    self.0.push(alias.value.clone());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
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
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::Named { name, .. } => self.0.push(name.value.clone()),
                Expr::Struct { fields, .. } => self.0.extend(
                    fields
                        .iter()
                        .filter_map(|f| f.field_name.as_ref().map(|n| n.value.clone())),
                ),
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut names = Names(Vec::new());
    let _ = query.visit(&mut names);
    names.0
}

/// `ARRAY<T>[…]` (a typed array literal, which sqlparser reads as
/// comparisons) → `CAST([…] AS ARRAY<T>)`, in the SQL's tokens; `None` when
/// the SQL has none (it is then parsed as written, positions exact).
fn typed_array_literals(sql: &str) -> Option<String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    static DIALECT: BigQueryDialect = BigQueryDialect {};
    let upper = sql.to_ascii_uppercase();
    if !upper.contains("ARRAY") || !upper.contains('<') {
        return None;
    }
    let tokens = Tokenizer::new(&DIALECT, sql)
        .with_unescape(false)
        .tokenize()
        .ok()?;
    fn next_solid(tokens: &[Token], mut i: usize) -> Option<usize> {
        while i < tokens.len() {
            if !matches!(tokens[i], Token::Whitespace(_)) {
                return Some(i);
            }
            i += 1;
        }
        None
    }
    /// The typed literal starting at `i` (the word ARRAY): the index of its
    /// closing `>`-token and of its `[` and `]`.
    fn literal_at(tokens: &[Token], i: usize) -> Option<(usize, usize, usize)> {
        let Token::Word(w) = &tokens[i] else {
            return None;
        };
        if w.quote_style.is_some() || !w.value.eq_ignore_ascii_case("ARRAY") {
            return None;
        }
        let lt = next_solid(tokens, i + 1)?;
        if tokens[lt] != Token::Lt {
            return None;
        }
        let mut depth = 0i32;
        let mut gt = None;
        for (j, t) in tokens.iter().enumerate().skip(lt) {
            match t {
                Token::Lt => depth += 1,
                Token::Gt => depth -= 1,
                Token::ShiftRight => depth -= 2,
                Token::LParen | Token::RParen | Token::LBracket | Token::SemiColon => {
                    return None;
                }
                _ => {}
            }
            if depth == 0 {
                gt = Some(j);
                break;
            }
            if depth < 0 {
                return None;
            }
        }
        let gt = gt?;
        let lb = next_solid(tokens, gt + 1)?;
        if tokens[lb] != Token::LBracket {
            return None;
        }
        let mut depth = 0;
        for (j, t) in tokens.iter().enumerate().skip(lb) {
            match t {
                Token::LBracket => depth += 1,
                Token::RBracket => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((gt, lb, j));
                    }
                }
                _ => {}
            }
        }
        None
    }
    fn rewrite(tokens: &[Token], out: &mut String) -> bool {
        let mut changed = false;
        let mut i = 0;
        while i < tokens.len() {
            if let Some((gt, lb, rb)) = literal_at(tokens, i) {
                out.push_str("CAST(");
                rewrite(&tokens[lb..=rb], out);
                out.push_str(" AS ");
                for t in &tokens[i..=gt] {
                    out.push_str(&t.to_string());
                }
                out.push(')');
                changed = true;
                i = rb + 1;
            } else {
                out.push_str(&tokens[i].to_string());
                i += 1;
            }
        }
        changed
    }
    let mut out = String::with_capacity(sql.len() + 16);
    rewrite(&tokens, &mut out).then_some(out)
}

/// The struct type that stands for `RANGE<element>` in the SQL given to
/// the parser (see [`crate::range`]).
fn range_struct_text(element: &str) -> String {
    format!(
        "STRUCT<{} {element}, {} {element}>",
        crate::range::START,
        crate::range::END
    )
}

/// `RANGE<T>` (a type sqlparser does not know) → the struct type of
/// [`crate::range`], and the literal `RANGE<T> '…'` → `bq_range_cast('…',
/// CAST(NULL AS <that type>))`, in the SQL's tokens; `Ok(None)` when the
/// SQL names no RANGE type; an error for a RANGE of another element type.
fn range_types(sql: &str) -> Result<Option<String>> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    static DIALECT: BigQueryDialect = BigQueryDialect {};
    if !has_range_type(sql) {
        return Ok(None);
    }
    let Ok(tokens) = Tokenizer::new(&DIALECT, sql)
        .with_unescape(false)
        .tokenize_with_location()
    else {
        return Ok(None);
    };
    let solid = |mut i: usize| {
        while i < tokens.len() && matches!(tokens[i].token, Token::Whitespace(_)) {
            i += 1;
        }
        i
    };
    let mut out = String::with_capacity(sql.len() + 64);
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i].token;
        let is_range = matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("RANGE"));
        let lt = solid(i + 1);
        if !is_range || tokens.get(lt).map(|t| &t.token) != Some(&Token::Lt) {
            out.push_str(&t.to_string());
            i += 1;
            continue;
        }
        let at = position(tokens[i].span);
        let el = solid(lt + 1);
        let element = match tokens.get(el).map(|t| &t.token) {
            Some(Token::Word(w)) => w.value.clone(),
            other => {
                return Err(BqError::Sql {
                    message: format!(
                        "RANGE<…> takes DATE, DATETIME or TIMESTAMP, got {}",
                        other.map(|t| t.to_string()).unwrap_or_default()
                    ),
                    position: at,
                });
            }
        };
        let Some(element) = crate::range::Element::from_name(&element) else {
            return Err(BqError::Sql {
                message: format!(
                    "RANGE<{element}> is not a type: a RANGE's elements are DATE, DATETIME or TIMESTAMP"
                ),
                position: at,
            });
        };
        let gt = solid(el + 1);
        let closing = tokens.get(gt).map(|t| &t.token);
        let rest = match closing {
            Some(Token::Gt) => "",
            Some(Token::ShiftRight) => ">",
            _ => {
                return Err(BqError::Sql {
                    message: "RANGE<…> is not closed with `>`".into(),
                    position: at,
                });
            }
        };
        let ty = range_struct_text(element.name());
        let lit = solid(gt + 1);
        match tokens.get(lit).map(|t| &t.token) {
            Some(Token::SingleQuotedString(_) | Token::DoubleQuotedString(_))
                if rest.is_empty() =>
            {
                out.push_str(&format!(
                    "bq_range_cast({}, CAST(NULL AS {ty}))",
                    tokens[lit].token
                ));
                i = lit + 1;
            }
            _ => {
                out.push_str(&ty);
                out.push_str(rest);
                i = gt + 1;
            }
        }
        changed = true;
    }
    Ok(changed.then_some(out))
}

/// Whether a query divides (`/`) or names a NUMERIC type: the warehouse's
/// analyzer rule changes the types DataFusion gives those expressions.
pub fn divides_or_decimals(query: &Query) -> bool {
    use ast::{Visit, Visitor};
    struct Finds;
    impl Visitor for Finds {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let decimal = |t: &SqlType| {
                matches!(
                    t,
                    SqlType::Decimal(_)
                        | SqlType::Numeric(_)
                        | SqlType::BigNumeric(_)
                        | SqlType::BigDecimal(_)
                )
            };
            match e {
                Expr::BinaryOp {
                    op: ast::BinaryOperator::Divide,
                    ..
                } => ControlFlow::Break(()),
                Expr::Cast { data_type, .. } if decimal(data_type) => ControlFlow::Break(()),
                Expr::TypedString(ts) if decimal(&ts.data_type) => ControlFlow::Break(()),
                Expr::Function(f)
                    if matches!(
                        object_name_text(&f.name).to_ascii_lowercase().as_str(),
                        "avg" | "bq_divide" | "safe_divide"
                    ) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
    }
    query.visit(&mut Finds).is_break()
}

/// Parses BigQuery SQL into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let ranges = range_types(sql)?;
    let sql = ranges.as_deref().unwrap_or(sql);
    let rewritten = typed_array_literals(sql);
    let sql = rewritten.as_deref().unwrap_or(sql);
    let statements = parser(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| {
            let msg = e.to_string();
            let msg = msg
                .strip_prefix("sql parser error: ")
                .unwrap_or(&msg)
                .to_string();
            let (message, mut position) = split_position(&msg);
            if position.is_none() && message.contains("found: EOF") {
                position = Some(end_of(sql));
            }
            // GoogleSQL the parser does not know, rather than a syntax error.
            let found = message
                .rsplit_once("found: ")
                .map(|(_, f)| f.trim().to_ascii_uppercase())
                .unwrap_or_default();
            if matches!(
                found.as_str(),
                "ASSERT_ROWS_MODIFIED"
                    | "PIVOT"
                    | "UNPIVOT"
                    | "TABLESAMPLE"
                    | "MATCH_RECOGNIZE"
                    | "CORRESPONDING"
            ) {
                return BqError::Unsupported {
                    construct: found,
                    position,
                };
            }
            if sql.to_ascii_uppercase().contains("ASSERT_ROWS_MODIFIED") {
                return BqError::Unsupported {
                    construct: "ASSERT_ROWS_MODIFIED".into(),
                    position,
                };
            }
            if has_range_type(sql) {
                return BqError::Unsupported {
                    construct: "RANGE values".into(),
                    position,
                };
            }
            if let Some(construct) = unparsed_construct(sql, position, &found) {
                return BqError::Unsupported {
                    construct: construct.into(),
                    position,
                };
            }
            if message.starts_with("Expected: a concrete value") {
                return BqError::Unsupported {
                    construct: format!(
                        "an expression where the local warehouse takes only a literal ({message})"
                    ),
                    position,
                };
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

/// The text of `sql` before `p` (a parser position: 1-based line and
/// column in characters); `None` if `sql` has no such place.
fn text_before(sql: &str, p: Position) -> Option<&str> {
    let mut offset = 0;
    for (i, line) in sql.split_inclusive('\n').enumerate() {
        if i + 1 == p.line as usize {
            let column = (p.column as usize).checked_sub(1)?;
            let within = match line.char_indices().nth(column) {
                Some((b, _)) => b,
                None if column == line.chars().count() => line.len(),
                None => return None,
            };
            return Some(&sql[..offset + within]);
        }
        offset += line.len();
    }
    None
}

/// GoogleSQL the parser stops at, by the token it `found` and the text
/// before it: a `CAST(… FORMAT …)` whose format is an expression rather
/// than a literal (`FORMAT 'b' || 'ase2'`), and the STRUCT with no fields
/// (`STRUCT()`, `STRUCT<>`); what is refused as unsupported, not called a
/// syntax error.
fn unparsed_construct(sql: &str, position: Option<Position>, found: &str) -> Option<&'static str> {
    let before = text_before(sql, position?)?.trim_end();
    let ends_with_word = |text: &str, word: &str| {
        text.len() >= word.len()
            && text.is_char_boundary(text.len() - word.len())
            && text[text.len() - word.len()..].eq_ignore_ascii_case(word)
            && !text[..text.len() - word.len()]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '`')
    };
    if let Some(open) = before.strip_suffix('(')
        && found == ")"
        && ends_with_word(open.trim_end(), "STRUCT")
    {
        return Some("STRUCT() with no fields");
    }
    if found == "<>" && ends_with_word(before, "STRUCT") {
        return Some("the type STRUCT<> with no fields");
    }
    // `FORMAT 'lit'` followed by anything but `)` or `AT TIME ZONE`.
    if found != ")" && found != "AT" {
        let quote = before.chars().next_back()?;
        if matches!(quote, '\'' | '"') {
            let body = &before[..before.len() - 1];
            let start = body.rfind(quote)?;
            let head = before[..start].trim_end();
            let head = head.strip_suffix(['r', 'R', 'b', 'B']).unwrap_or(head);
            if ends_with_word(head.trim_end(), "FORMAT") {
                return Some("CAST … FORMAT with an expression as the format (only a literal)");
            }
        }
    }
    None
}

/// Whether `sql` names the type `RANGE<…>`.
fn has_range_type(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.match_indices("RANGE").any(|(i, _)| {
        let before = upper[..i].chars().next_back();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && upper[i + 5..].trim_start().starts_with('<')
    })
}

/// A parser of BigQuery SQL that keeps string literals as written: GoogleSQL's
/// escapes are applied by the rewriter ([`super::literals`]), not by
/// sqlparser, whose escapes are MySQL's.
fn parser(sql: &str) -> std::result::Result<Parser<'static>, ParserError> {
    static DIALECT: BigQueryDialect = BigQueryDialect {};
    Parser::new(&DIALECT)
        .with_options(
            ParserOptions::new()
                .with_trailing_commas(DIALECT.supports_trailing_commas())
                .with_unescape(false),
        )
        .try_with_sql(sql)
}

/// `e` with a position past the end of `sql` (a line or column it does
/// not have) moved to the end of the statement.
pub fn within(e: BqError, sql: &str) -> BqError {
    let clamp = |p: Option<Position>| {
        p.map(|p| {
            let line = sql.lines().nth(p.line.saturating_sub(1) as usize);
            match line {
                Some(l) if p.column <= l.chars().count() as u64 + 1 => p,
                _ => end_of(sql),
            }
        })
    };
    match e {
        BqError::Sql { message, position } => BqError::Sql {
            message,
            position: clamp(position),
        },
        BqError::Unsupported {
            construct,
            position,
        } => BqError::Unsupported {
            construct,
            position: clamp(position),
        },
        BqError::UnknownTable {
            table,
            position,
            hint,
        } => BqError::UnknownTable {
            table,
            position: clamp(position),
            hint,
        },
        other => other,
    }
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
    /// Named windows (`WINDOW w AS (…)`) that have a frame.
    framed_windows: HashSet<String>,
    /// The aliases of the FROM items of the SELECTs being visited, outer
    /// first (`FROM t.arr` of an alias `t` is an array, not a table).
    from_aliases: Vec<Vec<String>>,
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
            framed_windows: HashSet::new(),
            from_aliases: Vec::new(),
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

/// The date part `WEEK(MONDAY)` of `DATE_TRUNC` and its kin, which would
/// read as a call of a function `WEEK`, becomes the part name `WEEK(MONDAY)`
/// (an identifier, as `MONTH` is).
fn week_part_arguments(e: &mut Expr) {
    let Expr::Function(f) = e else {
        return;
    };
    let name = object_name_text(&f.name).to_ascii_lowercase();
    if !matches!(
        name.as_str(),
        "date_trunc" | "datetime_trunc" | "timestamp_trunc" | "last_day"
    ) {
        return;
    }
    let Some(args) = plain_args(f) else {
        return;
    };
    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(part @ Expr::Function(_)))) =
        args.get_mut(1)
        && let Expr::Function(w) = &*part
        && object_name_text(&w.name).eq_ignore_ascii_case("week")
        && let FunctionArguments::List(l) = &w.args
        && let [a] = l.args.as_slice()
        && let Some(Expr::Identifier(day)) = arg_expr(a)
    {
        let text = format!("WEEK({})", day.value.to_ascii_uppercase());
        *part = Expr::Identifier(Ident::with_span(day.span, text));
    }
}

/// `DAY` (an identifier) → `'DAY'`.
fn part_to_string(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Identifier(i) => Some(string_lit(&i.value.to_ascii_uppercase())),
        _ => None,
    }
}

/// `INTERVAL n PART` → (n, 'PART'); `Err` for a count that is a literal
/// but not an integer (`INTERVAL 1.5 DAY`: BigQuery takes INT64 only).
fn split_interval(e: &Expr) -> Result<Option<(Expr, Expr)>> {
    match e {
        Expr::Interval(iv) => {
            let Some(part) = iv.leading_field.as_ref().map(ToString::to_string) else {
                return Ok(None);
            };
            let mut n = iv.value.as_ref();
            while let Expr::Nested(inner) | Expr::UnaryOp { expr: inner, .. } = n {
                n = inner;
            }
            if let Expr::Value(v) = n
                && let Value::Number(text, _) = &v.value
                && !text.chars().all(|c| c.is_ascii_digit())
            {
                return Err(BqError::Sql {
                    message: format!(
                        "INTERVAL {} {part}: the count of an interval must be an INT64, not {text}",
                        iv.value
                    ),
                    position: position(v.span),
                });
            }
            Ok(Some((
                (*iv.value).clone(),
                string_lit(&part.to_ascii_uppercase()),
            )))
        }
        _ => Ok(None),
    }
}

/// Whether `e` is the literal NULL (in parentheses or not).
fn is_null_literal(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => is_null_literal(inner),
        Expr::Value(v) => v.value == Value::Null,
        _ => false,
    }
}

/// BigQuery refuses a literal NULL as an operand of `+ - * /`, unary `-`
/// and `NOT` (`SELECT 1 + NULL`: "Operands of + cannot be literal NULL").
fn check_null_operands(e: &Expr) -> Result<()> {
    use ast::BinaryOperator as B;
    let (op, operands): (&str, Vec<&Expr>) = match e {
        Expr::BinaryOp { left, op, right } => match op {
            B::Plus => ("+", vec![left.as_ref(), right.as_ref()]),
            B::Minus => ("-", vec![left.as_ref(), right.as_ref()]),
            B::Multiply => ("*", vec![left.as_ref(), right.as_ref()]),
            B::Divide => ("/", vec![left.as_ref(), right.as_ref()]),
            _ => return Ok(()),
        },
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => ("NOT", vec![expr.as_ref()]),
            UnaryOperator::Minus => ("unary -", vec![expr.as_ref()]),
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    match operands.into_iter().find(|o| is_null_literal(o)) {
        Some(o) => Err(BqError::Sql {
            message: format!(
                "operands of {op} cannot be literal NULL (write CAST(NULL AS type) for a typed NULL)"
            ),
            position: position(o.span()),
        }),
        None => Ok(()),
    }
}

/// Whether `e` is BOOL by its form (a comparison, `AND`, `IS NULL`, …).
fn is_boolean_form(e: &Expr) -> bool {
    use ast::BinaryOperator as B;
    match e {
        Expr::Nested(inner) => is_boolean_form(inner),
        Expr::BinaryOp { op, .. } => matches!(
            op,
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::And | B::Or | B::Xor
        ),
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            ..
        } => true,
        Expr::Value(v) => matches!(v.value, Value::Boolean(_)),
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::InUnnest { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::Exists { .. } => true,
        _ => false,
    }
}

/// A condition of `IF`/`CASE WHEN`, checked to be BOOL when its form does
/// not say so (BigQuery refuses `IF(1, …)`; DataFusion would cast 1 to true).
fn checked_condition(e: &Expr, what: &str) -> Expr {
    if is_boolean_form(e) {
        e.clone()
    } else {
        call("bq_condition", vec![e.clone(), string_lit(what)])
    }
}

/// `arr[OFFSET(i)]`, `arr[ORDINAL(i)]`, `arr[SAFE_OFFSET(i)]`,
/// `arr[SAFE_ORDINAL(i)]` and `arr[i]` (an OFFSET) → `bq_array_at(arr, i,
/// 'MODE')`: 0-based or 1-based, an error or NULL out of bounds, as in
/// BigQuery (DataFusion's `arr[i]` is 1-based and NULL out of bounds).
/// A string key (`s['a']`) is left to DataFusion.
fn array_subscripts(e: &mut Expr) {
    let Expr::CompoundFieldAccess { root, access_chain } = e else {
        return;
    };
    let Some(k) = access_chain.iter().position(|a| {
        matches!(a, ast::AccessExpr::Subscript(ast::Subscript::Index { index }) if !is_string_literal(index))
    }) else {
        return;
    };
    let mut rest = access_chain.split_off(k);
    let ast::AccessExpr::Subscript(ast::Subscript::Index { index }) = rest.remove(0) else {
        return;
    };
    let array = if access_chain.is_empty() {
        (**root).clone()
    } else {
        Expr::CompoundFieldAccess {
            root: root.clone(),
            access_chain: std::mem::take(access_chain),
        }
    };
    let (mode, index) = match &index {
        Expr::Function(f) => {
            let name = object_name_text(&f.name).to_ascii_uppercase();
            let args: Vec<Expr> = match &f.args {
                FunctionArguments::List(l) => l.args.iter().filter_map(arg_expr).cloned().collect(),
                _ => vec![],
            };
            match (name.as_str(), args.as_slice()) {
                ("OFFSET" | "ORDINAL" | "SAFE_OFFSET" | "SAFE_ORDINAL", [i]) => {
                    (name.clone(), i.clone())
                }
                _ => ("OFFSET".to_string(), index.clone()),
            }
        }
        _ => ("OFFSET".to_string(), index.clone()),
    };
    let at = call("bq_array_at", vec![array, index, string_lit(&mode)]);
    // `.field` of an element: DataFusion takes it as `['field']`.
    for a in &mut rest {
        if let ast::AccessExpr::Dot(Expr::Identifier(i)) = a {
            *a = ast::AccessExpr::Subscript(ast::Subscript::Index {
                index: string_lit(&i.value),
            });
        }
    }
    *e = if rest.is_empty() {
        at
    } else {
        let mut next = Expr::CompoundFieldAccess {
            root: Box::new(at),
            access_chain: rest,
        };
        array_subscripts(&mut next);
        next
    };
}

/// The value of a constant INT64 expression: `Some(None)` for NULL,
/// `None` when not a constant.
fn constant_int(e: &Expr) -> Option<Option<i64>> {
    match e {
        Expr::Nested(inner) => constant_int(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => constant_int(expr).map(|v| v.and_then(i64::checked_neg)),
        Expr::Value(v) => match &v.value {
            Value::Null => Some(None),
            Value::Number(n, _) => n.parse().ok().map(Some),
            _ => None,
        },
        Expr::Cast { expr, .. } => match expr.as_ref() {
            Expr::Value(v) if v.value == Value::Null => Some(None),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `e` reads a column (an identifier outside a subquery).
fn refers_to_columns(e: &Expr) -> bool {
    use ast::{Visit, Visitor};
    struct Columns(bool);
    impl Visitor for Columns {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
            ControlFlow::Break(())
        }
    }
    let mut c = Columns(false);
    let _ = e.visit(&mut c);
    c.0
}

/// `[STRUCT(1 AS a, 'x' AS b), (2, 'y')]`: the elements after a first
/// STRUCT with named fields take its names (BigQuery's array literal has
/// one element type; DataFusion would not unify `(2, 'y')` with it).
fn name_struct_elements(elems: &mut [Expr]) {
    let Some(Expr::Struct { values, fields }) = elems.first() else {
        return;
    };
    if !fields.is_empty() {
        return;
    }
    let names: Option<Vec<Ident>> = values
        .iter()
        .map(|v| match v {
            Expr::Named { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let Some(names) = names else { return };
    for e in elems.iter_mut().skip(1) {
        let values: Vec<Expr> = match e {
            Expr::Tuple(v) => v.clone(),
            Expr::Struct { values, fields } if fields.is_empty() => values
                .iter()
                .map(|v| match v {
                    Expr::Named { expr, .. } => (**expr).clone(),
                    other => other.clone(),
                })
                .collect(),
            _ => continue,
        };
        if values.len() != names.len() {
            continue;
        }
        *e = Expr::Struct {
            values: values
                .into_iter()
                .zip(&names)
                .map(|(v, n)| Expr::Named {
                    expr: Box::new(v),
                    name: n.clone(),
                })
                .collect(),
            fields: vec![],
        };
    }
}

/// A scalar subquery `(SELECT AS STRUCT a, b AS x FROM …)` → `(SELECT
/// STRUCT(a, b AS x) FROM …)`: one STRUCT column, as in BigQuery (DataFusion
/// has no SELECT AS STRUCT and refuses a subquery of two columns). ORDER BY
/// of a field's alias orders by its expression.
fn struct_subquery(q: &mut Query) -> Result<()> {
    let ast::SetExpr::Select(select) = q.body.as_mut() else {
        return Ok(());
    };
    let distinct = match &select.value_table_mode {
        Some(ast::ValueTableMode::AsStruct) => false,
        Some(ast::ValueTableMode::DistinctAsStruct) => true,
        _ => return Ok(()),
    };
    let mut values = Vec::new();
    let mut aliases: Vec<(Ident, Expr)> = Vec::new();
    for item in &select.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => values.push(e.clone()),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                aliases.push((alias.clone(), expr.clone()));
                values.push(Expr::Named {
                    expr: Box::new(expr.clone()),
                    name: alias.clone(),
                });
            }
            _ => {
                return Err(unsupported(
                    "SELECT AS STRUCT * in a subquery (name the fields)".into(),
                    select.select_token.0.span,
                ));
            }
        }
    }
    select.value_table_mode = None;
    if distinct {
        select.distinct = Some(ast::Distinct::Distinct);
    }
    select.projection = vec![ast::SelectItem::UnnamedExpr(Expr::Struct {
        values,
        fields: vec![],
    })];
    if let Some(order) = &mut q.order_by
        && let ast::OrderByKind::Expressions(items) = &mut order.kind
    {
        for o in items {
            if let Expr::Identifier(i) = &o.expr
                && let Some((_, e)) = aliases
                    .iter()
                    .find(|(a, _)| a.value.eq_ignore_ascii_case(&i.value))
            {
                o.expr = e.clone();
            }
        }
    }
    Ok(())
}

/// `STRUCT(customer_id AS id, status, t.price)`: a field without an alias
/// that is a column or field path is named after its last name (`status`,
/// `price`), as in BigQuery; other fields stay anonymous. A name already
/// taken by another field is left anonymous.
fn name_struct_fields(e: &mut Expr) {
    let Expr::Struct { values, fields } = e else {
        return;
    };
    if !fields.is_empty() {
        return;
    }
    let mut taken: Vec<String> = values
        .iter()
        .filter_map(|v| match v {
            Expr::Named { name, .. } => Some(name.value.to_lowercase()),
            _ => None,
        })
        .collect();
    for v in values.iter_mut() {
        let name = match v {
            Expr::Identifier(i) => i.clone(),
            Expr::CompoundIdentifier(parts) => match parts.last() {
                Some(i) => i.clone(),
                None => continue,
            },
            Expr::CompoundFieldAccess { access_chain, .. } => match access_chain.last() {
                Some(ast::AccessExpr::Dot(Expr::Identifier(i))) => i.clone(),
                _ => continue,
            },
            _ => continue,
        };
        let lower = name.value.to_lowercase();
        if taken.contains(&lower) {
            continue;
        }
        taken.push(lower);
        *v = Expr::Named {
            expr: Box::new(v.clone()),
            name,
        };
    }
}

/// The values of a STRUCT literal: a tuple `(x, y)` or an untyped
/// `STRUCT(x, y AS b)` (names dropped).
fn struct_values(v: &Expr) -> Option<Vec<Expr>> {
    match v {
        Expr::Tuple(vs) => Some(vs.clone()),
        Expr::Struct { values, fields } if fields.is_empty() => Some(
            values
                .iter()
                .map(|x| match x {
                    Expr::Named { expr, .. } => (**expr).clone(),
                    other => other.clone(),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// `STRUCT<a T, …>` of the values of a STRUCT literal → `STRUCT(CAST(x AS
/// T) AS a, …)`: BigQuery's STRUCT types take values by position,
/// converting them; DataFusion plans no typed STRUCT constructor and does
/// not cast STRUCTs whose field names differ (`CAST(List(Struct(c0, c1))
/// AS List(Struct(country, vat_rate)))`). `None` (left as it was) for
/// anonymous or RANGE fields, or a count of values that does not match.
fn typed_struct(values: &[Expr], fields: &[ast::StructField]) -> Option<Expr> {
    if values.len() != fields.len() || fields.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(values.len());
    for (v, f) in values.iter().zip(fields) {
        let name = f.field_name.clone()?;
        // RANGE, and `STRING(5)`-like types whose limits would go unchecked.
        let parameterized = nested_type_parameters(&SqlType::Array(
            ast::ArrayElemTypeDef::AngleBracket(Box::new(f.field_type.clone())),
        ));
        if range_sql_element(&f.field_type).is_some() || parameterized {
            return None;
        }
        let v = match v {
            Expr::Named { expr, .. } => (**expr).clone(),
            other => other.clone(),
        };
        out.push(Expr::Named {
            expr: Box::new(typed_value(&v, &f.field_type)?),
            name,
        });
    }
    Some(Expr::Struct {
        values: out,
        fields: vec![],
    })
}

/// A literal STRUCT, or array of them, converted to BigQuery type `t`
/// ([`typed_struct`]); `None` for other values and types.
fn typed_literal(v: &Expr, t: &SqlType) -> Option<Expr> {
    match t {
        SqlType::Struct(fields, _) => typed_struct(&struct_values(v)?, fields),
        SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(elem))
            if matches!(elem.as_ref(), SqlType::Struct(..)) =>
        {
            let Expr::Array(a) = v else { return None };
            if a.elem.is_empty() {
                return None;
            }
            let mut elems = Vec::with_capacity(a.elem.len());
            for e in &a.elem {
                elems.push(if is_null_literal(e) {
                    typed_value(e, elem)?
                } else {
                    typed_literal(e, elem)?
                });
            }
            Some(Expr::Array(ast::Array {
                elem: elems,
                named: a.named,
            }))
        }
        _ => None,
    }
}

/// `v` as a value of BigQuery type `t`: a STRUCT or array-of-STRUCT literal
/// by [`typed_literal`], anything else by a CAST (a number literal cast to
/// NUMERIC keeping its digits).
fn typed_value(v: &Expr, t: &SqlType) -> Option<Expr> {
    if let Some(e) = typed_literal(v, t) {
        return Some(e);
    }
    let decimal = matches!(
        t,
        SqlType::Numeric(_) | SqlType::Decimal(_) | SqlType::BigNumeric(_) | SqlType::BigDecimal(_)
    );
    let value = match number_text(v) {
        Some(text) if decimal => string_lit(&text),
        _ => v.clone(),
    };
    let mut ty = t.clone();
    fix_type(&mut ty);
    Some(cast(value, ty))
}

/// Whether a STRUCT or ARRAY type has a parameterized type inside
/// (`STRUCT<a STRING(5)>`), whose limit the warehouse would not check.
fn nested_type_parameters(t: &SqlType) -> bool {
    fn parameterized(t: &SqlType) -> bool {
        match t {
            SqlType::String(Some(_)) | SqlType::Bytes(Some(_)) => true,
            SqlType::Numeric(info)
            | SqlType::Decimal(info)
            | SqlType::BigNumeric(info)
            | SqlType::BigDecimal(info) => !matches!(info, ExactNumberInfo::None),
            SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => parameterized(inner),
            SqlType::Struct(fields, _) => fields.iter().any(|f| parameterized(&f.field_type)),
            _ => false,
        }
    }
    match t {
        SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)) => parameterized(inner),
        SqlType::Struct(fields, _) => fields.iter().any(|f| parameterized(&f.field_type)),
        _ => false,
    }
}

/// `INTERVAL '1' DAY`.
fn one_day() -> Expr {
    Expr::Interval(ast::Interval {
        value: Box::new(string_lit("1")),
        leading_field: Some(ast::DateTimeField::Day),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

/// `EXTRACT(part FROM value)`, `value` possibly `ts AT TIME ZONE zone`.
fn extract(field: &ast::DateTimeField, value: &Expr) -> Expr {
    let value = match value {
        Expr::AtTimeZone {
            timestamp,
            time_zone,
        } => call(
            "bq_to_zone",
            vec![(**timestamp).clone(), (**time_zone).clone()],
        ),
        other => other.clone(),
    };
    let part = field.to_string().to_ascii_uppercase();
    match part.as_str() {
        "DATE" => cast(value, SqlType::Date),
        "TIME" => cast(value, SqlType::Time(None, TimezoneInfo::None)),
        "DATETIME" => cast(value, SqlType::Timestamp(Some(6), TimezoneInfo::None)),
        _ => call("bq_extract", vec![string_lit(&part), value]),
    }
}

/// The text of a number literal, `-` included (`-1.5`).
fn number_text(e: &Expr) -> Option<String> {
    let (negative, number) = match e {
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: n,
        } => (true, n.as_ref()),
        other => (false, other),
    };
    match number {
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) if negative => Some(format!("-{text}")),
            Value::Number(text, _) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `e` calls an analytic function (`… OVER (…)`) before any
/// subquery (whose analytic functions are its own; `false` then).
fn has_window<T: ast::Visit>(e: &T) -> bool {
    use ast::Visitor;
    struct Finds;
    impl Visitor for Finds {
        type Break = bool;
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<bool> {
            match e {
                Expr::Function(f) if f.over.is_some() => ControlFlow::Break(true),
                _ => ControlFlow::Continue(()),
            }
        }
        fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<bool> {
            ControlFlow::Break(false)
        }
    }
    e.visit(&mut Finds) == ControlFlow::Break(true)
}

/// A window that names another, `OVER (w ORDER BY … ROWS …)` or
/// `WINDOW w2 AS (w1 …)`, as the named window's PARTITION BY, ORDER BY and
/// frame with its own additions (DataFusion resolves only `OVER w`, and
/// took `OVER (w …)` as if `w` were not there).
fn resolve_window_references(select: &mut ast::Select) {
    use std::collections::HashMap;
    fn merge(base: &ast::WindowSpec, spec: &ast::WindowSpec) -> ast::WindowSpec {
        ast::WindowSpec {
            window_name: None,
            partition_by: if spec.partition_by.is_empty() {
                base.partition_by.clone()
            } else {
                spec.partition_by.clone()
            },
            order_by: if spec.order_by.is_empty() {
                base.order_by.clone()
            } else {
                spec.order_by.clone()
            },
            window_frame: spec
                .window_frame
                .clone()
                .or_else(|| base.window_frame.clone()),
        }
    }
    let key = |i: &ast::Ident| i.value.to_lowercase();
    let mut defs: HashMap<String, ast::WindowSpec> = HashMap::new();
    // Each pass resolves the windows whose named window is resolved.
    for _ in 0..select.named_window.len() {
        for ast::NamedWindowDefinition(name, def) in &select.named_window {
            let spec = match def {
                ast::NamedWindowExpr::NamedWindow(other) => defs.get(&key(other)).cloned(),
                ast::NamedWindowExpr::WindowSpec(spec) => match &spec.window_name {
                    None => Some(spec.clone()),
                    Some(base) => defs.get(&key(base)).map(|b| merge(b, spec)),
                },
            };
            if let Some(spec) = spec {
                defs.insert(key(name), spec);
            }
        }
    }
    if defs.is_empty() {
        return;
    }
    for ast::NamedWindowDefinition(name, def) in &mut select.named_window {
        if let Some(spec) = defs.get(&key(name)) {
            *def = ast::NamedWindowExpr::WindowSpec(spec.clone());
        }
    }
    let mut resolve = |e: &mut Expr| {
        if let Expr::Function(f) = e
            && let Some(ast::WindowType::WindowSpec(spec)) = &mut f.over
            && let Some(base) = spec.window_name.as_ref().and_then(|n| defs.get(&key(n)))
        {
            *spec = merge(base, spec);
        }
        ControlFlow::<()>::Continue(())
    };
    let _ = ast::visit_expressions_mut(&mut select.projection, &mut resolve);
    let _ = ast::visit_expressions_mut(&mut select.qualify, &mut resolve);
}

/// `QUALIFY p` without an analytic function of its own, in a SELECT that
/// has one (valid GoogleSQL): `QUALIFY (p) AND ROW_NUMBER() OVER () > 0`,
/// the same filter, since DataFusion's planner looks for an analytic
/// function after it has replaced those of the SELECT list by columns.
fn qualify_with_windows(select: &mut ast::Select) {
    let Some(q) = &select.qualify else {
        return;
    };
    if has_window(q) || !select.projection.iter().any(has_window) {
        return;
    }
    let mut row_number = call("row_number", vec![]);
    if let Expr::Function(f) = &mut row_number {
        f.args = FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![],
            clauses: vec![],
        });
        f.over = Some(ast::WindowType::WindowSpec(ast::WindowSpec {
            window_name: None,
            partition_by: vec![],
            order_by: vec![],
            window_frame: None,
        }));
    }
    let always = Expr::BinaryOp {
        left: Box::new(row_number),
        op: ast::BinaryOperator::Gt,
        right: Box::new(Expr::value(Value::Number("0".into(), false))),
    };
    select.qualify = Some(Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(q.clone()))),
        op: ast::BinaryOperator::And,
        right: Box::new(always),
    });
}

/// An analytic function without a frame (LAG, LEAD, the numbering
/// functions) ordered by keys: a ROWS frame, which it ignores, instead of
/// DataFusion's default RANGE frame up to the current row, which needs
/// ORDER BY keys DataFusion can search by value (a RANGE key is not one).
fn frameless(f: &mut Function) {
    if let Some(ast::WindowType::WindowSpec(spec)) = &mut f.over
        && spec.window_frame.is_none()
        && spec.window_name.is_none()
        && !spec.order_by.is_empty()
    {
        spec.window_frame = Some(ast::WindowFrame {
            units: ast::WindowFrameUnits::Rows,
            start_bound: ast::WindowFrameBound::Preceding(None),
            end_bound: Some(ast::WindowFrameBound::CurrentRow),
        });
    }
}

/// The element of `CAST(NULL AS <range struct>)`, the type argument of
/// `bq_range_cast`.
fn range_cast_element(e: &Expr) -> Option<crate::range::Element> {
    let Expr::Cast { data_type, .. } = e else {
        return None;
    };
    range_sql_element(data_type)
}

/// The element of a RANGE's struct type in the SQL (types already fixed
/// by [`fix_type`] or not).
fn range_sql_element(t: &SqlType) -> Option<crate::range::Element> {
    use crate::range::Element;
    let SqlType::Struct(fields, _) = t else {
        return None;
    };
    let [start, end] = fields.as_slice() else {
        return None;
    };
    if start.field_name.as_ref().map(|n| n.value.as_str()) != Some(crate::range::START)
        || end.field_name.as_ref().map(|n| n.value.as_str()) != Some(crate::range::END)
    {
        return None;
    }
    match &start.field_type {
        SqlType::Date => Some(Element::Date),
        SqlType::Datetime(_) | SqlType::Timestamp(_, TimezoneInfo::None) => Some(Element::DateTime),
        SqlType::Timestamp(_, _) => Some(Element::Timestamp),
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
    /// Whether a window has a frame (`ROWS …`/`RANGE …`), also by its name.
    fn has_frame(&self, w: &ast::WindowType) -> bool {
        match w {
            ast::WindowType::WindowSpec(spec) => {
                spec.window_frame.is_some()
                    || spec
                        .window_name
                        .as_ref()
                        .is_some_and(|n| self.framed_windows.contains(&n.value.to_lowercase()))
            }
            ast::WindowType::NamedWindow(n) => {
                self.framed_windows.contains(&n.value.to_lowercase())
            }
        }
    }

    /// The replacement of a function call, if BigQuery's differs from DataFusion's.
    fn rewrite_function(&mut self, f: &mut Function) -> Result<Option<Expr>> {
        let span = object_name_span(&f.name);
        let full = object_name_text(&f.name);
        // `SAFE.f(…)`: NULL instead of an error, for the parse functions.
        let safe = match full.to_ascii_lowercase().split_once('.') {
            Some(("safe", inner))
                if matches!(
                    inner,
                    "parse_date"
                        | "parse_timestamp"
                        | "parse_datetime"
                        | "int64"
                        | "bool"
                        | "float64"
                        | "double"
                        | "string"
                        | "json_object"
                ) =>
            {
                f.name = ObjectName::from(vec![Ident::with_span(span, inner)]);
                true
            }
            Some(("safe", _)) => {
                return Err(unsupported(
                    format!(
                        "function {full} (SAFE. works with PARSE_DATE, PARSE_TIMESTAMP, PARSE_DATETIME, JSON_OBJECT and INT64, BOOL, FLOAT64, DOUBLE, STRING of JSON; see also SAFE_CAST, SAFE_DIVIDE)"
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
        if JSON_FUNCTIONS.contains(&name.as_str()) {
            return json_function(&name, f, safe, span).map(Some);
        }
        if matches!(name.as_str(), "array_agg" | "array_concat_agg") {
            return array_aggregate(&name, f, span);
        }
        if name == "array"
            && let FunctionArguments::Subquery(q) = &f.args
        {
            let outer: Vec<String> = self.from_aliases.iter().flatten().cloned().collect();
            return array_subquery(q, &outer, span).map(Some);
        }
        let args: Vec<Expr> = match &f.args {
            FunctionArguments::List(l) => l.args.iter().filter_map(arg_expr).cloned().collect(),
            _ => vec![],
        };
        let replaced = match name.as_str() {
            // DataFusion's `now()` is the statement's start time, the same
            // in every call of one statement, as BigQuery's.
            "current_timestamp" if args.is_empty() => Some(cast(
                call("now", vec![]),
                SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
            )),
            "current_datetime" if args.is_empty() => Some(cast(
                call("now", vec![]),
                SqlType::Timestamp(Some(6), TimezoneInfo::None),
            )),
            "current_date" if args.is_empty() => Some(cast(call("now", vec![]), SqlType::Date)),
            // Microseconds, as CURRENT_TIMESTAMP's (`now()` has nanoseconds).
            "current_time" if args.is_empty() => Some(cast(
                cast(
                    call("now", vec![]),
                    SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                ),
                SqlType::Time(None, TimezoneInfo::None),
            )),
            // The statement's time as the wall clock of a zone.
            "current_datetime" | "current_date" | "current_time" if args.len() == 1 => {
                let local = call(
                    "bq_to_zone",
                    vec![
                        cast(
                            call("now", vec![]),
                            SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                        ),
                        args[0].clone(),
                    ],
                );
                Some(match name.as_str() {
                    "current_date" => cast(local, SqlType::Date),
                    "current_time" => cast(local, SqlType::Time(None, TimezoneInfo::None)),
                    _ => local,
                })
            }
            "current_timestamp" | "current_datetime" | "current_date" | "current_time" => {
                return Err(unsupported(
                    format!("{} with these arguments", name.to_uppercase()),
                    span,
                ));
            }
            // FLOAT64: +inf or -inf (an integer is never infinite).
            "is_inf" if args.len() == 1 => Some(Expr::BinaryOp {
                left: Box::new(call(
                    "abs",
                    vec![cast(
                        args[0].clone(),
                        SqlType::Double(ExactNumberInfo::None),
                    )],
                )),
                op: ast::BinaryOperator::Eq,
                right: Box::new(cast(
                    string_lit("inf"),
                    SqlType::Double(ExactNumberInfo::None),
                )),
            }),
            "unix_date" if args.len() == 1 => Some(call(
                "bq_date_diff",
                vec![
                    cast(args[0].clone(), SqlType::Date),
                    cast(string_lit("1970-01-01"), SqlType::Date),
                    string_lit("DAY"),
                ],
            )),
            "date_from_unix_date" if args.len() == 1 => Some(call(
                "bq_date_add",
                vec![
                    cast(string_lit("1970-01-01"), SqlType::Date),
                    cast(args[0].clone(), SqlType::BigInt(None)),
                    string_lit("DAY"),
                ],
            )),
            "date_bucket" | "datetime_bucket" if matches!(args.len(), 2 | 3) => {
                let (value_type, origin) = if name == "date_bucket" {
                    (SqlType::Date, "1950-01-01")
                } else {
                    (
                        SqlType::Timestamp(Some(6), TimezoneInfo::None),
                        "1950-01-01 00:00:00",
                    )
                };
                // Widths of a fixed length only (months vary).
                let fixed = match &args[1] {
                    Expr::Interval(iv) => {
                        matches!(
                            iv.leading_field,
                            Some(
                                ast::DateTimeField::Microsecond
                                    | ast::DateTimeField::Millisecond
                                    | ast::DateTimeField::Second
                                    | ast::DateTimeField::Minute
                                    | ast::DateTimeField::Hour
                                    | ast::DateTimeField::Day
                                    | ast::DateTimeField::Week(None)
                            )
                        ) && iv.last_field.is_none()
                    }
                    _ => is_null_literal(&args[1]),
                };
                if !fixed {
                    return Err(unsupported(
                        format!(
                            "{} with a bucket width other than an INTERVAL literal of MICROSECOND … WEEK",
                            name.to_uppercase()
                        ),
                        span,
                    ));
                }
                if args.iter().any(is_null_literal) {
                    Some(cast(Expr::value(Value::Null), value_type))
                } else {
                    let datetime = SqlType::Timestamp(Some(6), TimezoneInfo::None);
                    let origin = match args.get(2) {
                        Some(o) => cast(o.clone(), value_type.clone()),
                        None => cast(string_lit(origin), value_type.clone()),
                    };
                    let binned = call(
                        "date_bin",
                        vec![
                            args[1].clone(),
                            cast(cast(args[0].clone(), value_type.clone()), datetime.clone()),
                            cast(origin, datetime),
                        ],
                    );
                    Some(cast(binned, value_type))
                }
            }
            "split_substr" if matches!(args.len(), 3 | 4) => Some(call("bq_split_substr", args)),
            // TIME(h, m, s), TIME(timestamp, zone), TIME(datetime | timestamp | time).
            "time" if args.len() == 3 => Some(cast(
                call("make_time", args),
                SqlType::Time(None, TimezoneInfo::None),
            )),
            "time" if args.len() == 2 => Some(cast(
                call(
                    "bq_to_zone",
                    vec![
                        cast(
                            args[0].clone(),
                            SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                        ),
                        args[1].clone(),
                    ],
                ),
                SqlType::Time(None, TimezoneInfo::None),
            )),
            "time" if args.len() == 1 && !is_string_literal(&args[0]) => Some(cast(
                args[0].clone(),
                SqlType::Time(None, TimezoneInfo::None),
            )),
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
                let (n, part) = split_interval(&args[1])?
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
                } else if name.starts_with("datetime_") {
                    "bq_datetime_add"
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
                    ("format_timestamp", _) => "bq_format_timestamp",
                    ("format_datetime", _) => "bq_format_datetime",
                    ("parse_date", false) => "bq_parse_date",
                    ("parse_date", true) => "bq_safe_parse_date",
                    ("parse_datetime", false) => "bq_parse_datetime",
                    ("parse_datetime", true) => "bq_safe_parse_datetime",
                    (_, false) => "bq_parse_timestamp",
                    (_, true) => "bq_safe_parse_timestamp",
                };
                Some(call(udf, args))
            }
            "safe_divide" => Some(call("bq_safe_divide", args)),
            "div" if args.len() == 2 => Some(call("bq_div", args)),
            "ieee_divide" if args.len() == 2 => Some(call("bq_ieee_divide", args)),
            // LOG(x, base); DataFusion's log takes the base first.
            "log" if args.len() == 2 => Some(call("bq_log", args)),
            "is_nan" if args.len() == 1 => Some(call("isnan", args)),
            "array_is_distinct" if args.len() == 1 => Some(call("bq_array_is_distinct", args)),
            // DataFusion's ARRAY_SLICE counts from 1; BigQuery's from 0.
            "array_slice" => return Err(unsupported("function ARRAY_SLICE".into(), span)),
            "string_agg" if args.len() == 2 => {
                let sep = &args[1];
                if refers_to_columns(sep) {
                    return Err(BqError::Sql {
                        message: "the delimiter of STRING_AGG must be constant".into(),
                        position: position(sep.span()),
                    });
                }
                if constant_int(sep) == Some(None) {
                    return Err(BqError::Sql {
                        message: "the delimiter of STRING_AGG must not be NULL".into(),
                        position: position(sep.span()),
                    });
                }
                None
            }
            // BigQuery: NULL if any argument is NULL (DataFusion's skips NULLs).
            "concat" if !args.is_empty() => Some(call("bq_concat", args)),
            // INT64 results (DataFusion's are 32-bit or unsigned).
            "length" | "char_length" | "character_length" if args.len() == 1 => {
                Some(call("bq_length", args))
            }
            "byte_length" | "octet_length" | "strpos" | "ascii" | "unicode" | "instr" => {
                let inner = match name.as_str() {
                    "byte_length" => "octet_length",
                    "unicode" => "ascii",
                    other => other,
                };
                let mut g = f.clone();
                g.name = ObjectName::from(vec![Ident::with_span(span, inner)]);
                if !(self.known_function)(inner) {
                    return Err(unsupported(
                        format!("function {}", name.to_uppercase()),
                        span,
                    ));
                }
                Some(cast(Expr::Function(g), SqlType::BigInt(None)))
            }
            "row_number" | "rank" | "dense_rank" | "ntile" | "lag" | "lead" | "percent_rank"
            | "cume_dist"
                if f.over.as_ref().is_some_and(|w| self.has_frame(w)) =>
            {
                return Err(BqError::Sql {
                    message: format!(
                        "a window frame (ROWS/RANGE …) is not allowed for the analytic function {}",
                        name.to_uppercase()
                    ),
                    position: position(span),
                });
            }
            "lag" | "lead" if f.over.is_some() => {
                let upper = name.to_uppercase();
                if let Some(offset) = args.get(1) {
                    match constant_int(offset) {
                        Some(None) => {
                            return Err(BqError::Sql {
                                message: format!("the offset of {upper} must not be NULL"),
                                position: position(offset.span()),
                            });
                        }
                        Some(Some(n)) if n < 0 => {
                            return Err(BqError::Sql {
                                message: format!(
                                    "the offset of {upper} must not be negative, got {n}"
                                ),
                                position: position(offset.span()),
                            });
                        }
                        _ => {}
                    }
                }
                if let Some(default) = args.get(2)
                    && refers_to_columns(default)
                {
                    return Err(BqError::Sql {
                        message: format!(
                            "the default value (third argument) of {upper} must be constant"
                        ),
                        position: position(default.span()),
                    });
                }
                frameless(f);
                None
            }
            "row_number" | "rank" | "dense_rank" | "ntile" if f.over.is_some() => {
                frameless(f);
                Some(cast(Expr::Function(f.clone()), SqlType::BigInt(None)))
            }
            "row_number" | "rank" | "dense_rank" | "ntile" | "percent_rank" | "cume_dist"
            | "lag" | "lead" | "first_value" | "last_value" | "nth_value"
                if f.over.is_none() =>
            {
                return Err(BqError::Sql {
                    message: format!(
                        "{} is an analytic function: it needs an OVER clause, e.g. {}(…) OVER (ORDER BY …)",
                        name.to_uppercase(),
                        name.to_uppercase()
                    ),
                    position: position(span),
                });
            }
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
            // NULL when an argument is NULL (DataFusion's skips NULL arrays).
            "array_concat" if !args.is_empty() => {
                let any_null = args
                    .iter()
                    .map(|a| Expr::IsNull(Box::new(a.clone())))
                    .reduce(|a, b| Expr::BinaryOp {
                        left: Box::new(a),
                        op: ast::BinaryOperator::Or,
                        right: Box::new(b),
                    })
                    .unwrap_or(Expr::value(Value::Boolean(false)));
                Some(Expr::Case {
                    case_token: ast::helpers::attached_token::AttachedToken::empty(),
                    end_token: ast::helpers::attached_token::AttachedToken::empty(),
                    operand: None,
                    conditions: vec![CaseWhen {
                        condition: any_null,
                        result: Expr::value(Value::Null),
                    }],
                    else_result: Some(Box::new(call("array_concat", args))),
                })
            }
            "if" => {
                if args.len() != 3 {
                    return Err(bad_args("(condition, then, else)"));
                }
                Some(Expr::Case {
                    case_token: ast::helpers::attached_token::AttachedToken::empty(),
                    end_token: ast::helpers::attached_token::AttachedToken::empty(),
                    operand: None,
                    conditions: vec![CaseWhen {
                        condition: checked_condition(&args[0], "IF"),
                        result: args[1].clone(),
                    }],
                    else_result: Some(Box::new(args[2].clone())),
                })
            }
            "date" if args.len() == 1 => Some(cast(
                call("bq_date_arg", vec![args[0].clone()]),
                SqlType::Date,
            )),
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
            // Weeks beginning on another day, ISO years, and truncation on
            // a time zone's clock: `bq_trunc`.
            "timestamp_trunc" | "datetime_trunc" | "date_trunc"
                if (args.len() == 3 && name == "timestamp_trunc")
                    || (args.len() == 2
                        && matches!(&args[1], Expr::Identifier(i)
                            if i.value.contains('(') || i.value.eq_ignore_ascii_case("isoyear"))) =>
            {
                let part = match &args[1] {
                    Expr::Identifier(i) => string_lit(&i.value.to_ascii_uppercase()),
                    _ => return Err(bad_args("(value, DATE_PART [, time zone])")),
                };
                let value = match name.as_str() {
                    "timestamp_trunc" => cast(
                        args[0].clone(),
                        SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                    ),
                    "datetime_trunc" if is_string_literal(&args[0]) => cast(
                        args[0].clone(),
                        SqlType::Timestamp(Some(6), TimezoneInfo::None),
                    ),
                    "date_trunc" if is_string_literal(&args[0]) => {
                        cast(args[0].clone(), SqlType::Date)
                    }
                    _ => args[0].clone(),
                };
                let mut a = vec![value, part];
                a.extend(args.get(2).cloned());
                Some(call("bq_trunc", a))
            }
            "last_day" if matches!(args.len(), 1 | 2) => {
                let part = match args.get(1) {
                    None => string_lit("MONTH"),
                    Some(Expr::Identifier(i)) => string_lit(&i.value.to_ascii_uppercase()),
                    Some(_) => return Err(bad_args("(value [, DATE_PART])")),
                };
                let value = if is_string_literal(&args[0]) {
                    cast(args[0].clone(), SqlType::Date)
                } else {
                    args[0].clone()
                };
                Some(call("bq_last_day", vec![value, part]))
            }
            "unix_seconds" | "unix_millis" | "unix_micros" if args.len() == 1 => {
                let unit = match name.as_str() {
                    "unix_seconds" => "SECOND",
                    "unix_millis" => "MILLISECOND",
                    _ => "MICROSECOND",
                };
                Some(call("bq_unix", vec![args[0].clone(), string_lit(unit)]))
            }
            "regexp_extract" | "regexp_substr" if matches!(args.len(), 2..=4) => {
                Some(call("bq_regexp_extract", args))
            }
            "regexp_extract_all" if args.len() == 2 => Some(call("bq_regexp_extract_all", args)),
            "format" if !args.is_empty() => Some(call("bq_format", args)),
            "timestamp_trunc" | "datetime_trunc" | "date_trunc" if args.len() == 2 => {
                let part = match &args[1] {
                    Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                    _ => return Err(bad_args("(value, DATE_PART)")),
                };
                let value = match name.as_str() {
                    "timestamp_trunc" => cast(
                        args[0].clone(),
                        SqlType::Timestamp(Some(6), TimezoneInfo::WithTimeZone),
                    ),
                    "datetime_trunc" if is_string_literal(&args[0]) => cast(
                        args[0].clone(),
                        SqlType::Timestamp(Some(6), TimezoneInfo::None),
                    ),
                    _ => args[0].clone(),
                };
                let args = [value, args[1].clone()];
                let truncated = match part.as_str() {
                    // BigQuery's weeks begin on Sunday, DataFusion's (ISO) on
                    // Monday: the Monday-week of the next day, a day earlier.
                    "week" => {
                        let day = |op| Expr::BinaryOp {
                            left: Box::new(Expr::Nested(Box::new(args[0].clone()))),
                            op,
                            right: Box::new(one_day()),
                        };
                        let monday = call(
                            "date_trunc",
                            vec![string_lit("week"), day(ast::BinaryOperator::Plus)],
                        );
                        Expr::Nested(Box::new(Expr::BinaryOp {
                            left: Box::new(monday),
                            op: ast::BinaryOperator::Minus,
                            right: Box::new(one_day()),
                        }))
                    }
                    "isoweek" => call("date_trunc", vec![string_lit("week"), args[0].clone()]),
                    "isoyear" => return Err(bad_args("a date part other than ISOYEAR")),
                    p => call("date_trunc", vec![string_lit(p), args[0].clone()]),
                };
                Some(if name == "date_trunc" {
                    cast(truncated, SqlType::Date)
                } else {
                    truncated
                })
            }
            "regexp_contains" => Some(call("regexp_like", args)),
            // (value, regexp[, position[, occurrence[, occurrence_position]]]).
            "regexp_instr" if (2..=5).contains(&args.len()) => {
                let one = || Expr::value(Value::Number("1".into(), false));
                let mut a = args;
                if a.len() < 3 {
                    a.push(one());
                }
                if a.len() < 4 {
                    a.push(one());
                }
                if a.len() < 5 {
                    a.push(Expr::value(Value::Number("0".into(), false)));
                }
                Some(call("bq_regexp_instr", a))
            }
            // BigQuery replaces every match; DataFusion only the first without 'g'.
            "regexp_replace" if args.len() == 3 => {
                let mut a = args;
                a.push(string_lit("g"));
                Some(call("regexp_replace", a))
            }
            "split" if args.len() == 1 => {
                Some(call("bq_split", vec![args[0].clone(), string_lit(",")]))
            }
            "split" => Some(call("bq_split", args)),
            // ZetaSQL's REGEXP_MATCH: the whole value matches.
            "regexp_match" if args.len() == 2 => Some(call(
                "regexp_like",
                vec![
                    args[0].clone(),
                    call(
                        "bq_concat",
                        vec![string_lit("^(?:"), args[1].clone(), string_lit(")$")],
                    ),
                ],
            )),
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
            "substr" | "substring" => Some(call("bq_substr", args)),
            // The first/last n characters (bytes); a negative n is an error.
            "left" if args.len() == 2 => Some(call(
                "bq_substr",
                vec![
                    args[0].clone(),
                    Expr::value(Value::Number("1".into(), false)),
                    args[1].clone(),
                ],
            )),
            "right" if args.len() == 2 => Some(call(
                "bq_substr",
                vec![
                    args[0].clone(),
                    Expr::UnaryOp {
                        op: UnaryOperator::Minus,
                        expr: Box::new(Expr::Nested(Box::new(args[1].clone()))),
                    },
                    args[1].clone(),
                ],
            )),
            // INT64, and 0 for an empty array (DataFusion's: UInt64).
            "array_length" if args.len() == 1 => {
                Some(cast(call("cardinality", args), SqlType::BigInt(None)))
            }
            "generate_array" if matches!(args.len(), 2 | 3) => Some(call("generate_series", args)),
            "generate_date_array" if matches!(args.len(), 2 | 3) => {
                let step = match args.get(2) {
                    Some(step) => step.clone(),
                    None => one_day(),
                };
                Some(call(
                    "generate_series",
                    vec![
                        cast(args[0].clone(), SqlType::Date),
                        cast(args[1].clone(), SqlType::Date),
                        step,
                    ],
                ))
            }
            // STRING_AGG's delimiter is ',' by default.
            "string_agg" if args.len() == 1 => {
                let mut g = f.clone();
                if let Some(a) = plain_args(&mut g) {
                    a.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(string_lit(","))));
                }
                Some(Expr::Function(g))
            }
            "range" if args.len() == 2 => Some(call("bq_range", args)),
            "range" => return Err(bad_args("(start, end)")),
            "range_start" | "range_end" | "range_contains" | "range_overlaps"
            | "range_intersect" => Some(call(&format!("bq_{name}"), args)),
            // A RANGE literal (see `range_types`): checked here, with its position.
            "bq_range_cast" if args.len() == 2 && is_string_literal(&args[0]) => {
                if let (Expr::Value(v), Some(element)) = (&args[0], range_cast_element(&args[1]))
                    && let Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) =
                        &v.value
                {
                    crate::range::parse_literal(element, text).map_err(|e| match e {
                        BqError::Sql { message, .. } => BqError::Sql {
                            message,
                            position: position(v.span),
                        },
                        other => other,
                    })?;
                }
                None
            }
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

/// `ARRAY_AGG(… LIMIT n)` → `array_slice(ARRAY_AGG(…), 1, n)`;
/// `ARRAY_CONCAT_AGG(a [ORDER BY …] [LIMIT n])` → `flatten(ARRAY_AGG(a
/// [ORDER BY …]) FILTER (WHERE a IS NOT NULL))` (NULL arrays are skipped;
/// NULL when there is none), its LIMIT counting arrays.
fn array_aggregate(name: &str, f: &Function, span: Span) -> Result<Option<Expr>> {
    let upper = name.to_uppercase();
    let mut g = f.clone();
    g.name = ObjectName::from(vec![Ident::with_span(span, "array_agg")]);
    let mut limit = None;
    if let FunctionArguments::List(l) = &mut g.args {
        l.clauses.retain(|c| match c {
            ast::FunctionArgumentClause::Limit(n) => {
                limit = Some(n.clone());
                false
            }
            _ => true,
        });
    }
    let count = match &limit {
        None => None,
        Some(n) => match constant_int(n) {
            Some(Some(k)) if k > 0 => Some(n.clone()),
            Some(Some(k)) if k < 0 => {
                return Err(BqError::Sql {
                    message: format!("LIMIT in {upper} must not be negative, got {k}"),
                    position: position(n.span()),
                });
            }
            Some(None) => {
                return Err(BqError::Sql {
                    message: format!("LIMIT in {upper} must not be NULL"),
                    position: position(n.span()),
                });
            }
            _ => {
                return Err(unsupported(
                    format!("LIMIT {n} in {upper} (only a positive integer literal)"),
                    position_span(n),
                ));
            }
        },
    };
    if name == "array_agg" && count.is_none() {
        return Ok(None);
    }
    if g.over.is_some() && count.is_some() {
        return Err(unsupported(format!("{upper} with LIMIT and OVER"), span));
    }
    if name == "array_concat_agg" {
        if g.over.is_some() {
            return Err(unsupported(
                format!("{upper} as an analytic function"),
                span,
            ));
        }
        let arg = match &g.args {
            FunctionArguments::List(l) if l.args.len() == 1 && l.duplicate_treatment.is_none() => {
                arg_expr(&l.args[0]).cloned()
            }
            _ => None,
        };
        let Some(arg) = arg else {
            return Err(unsupported(
                format!("{upper} with these arguments (expected one array)"),
                span,
            ));
        };
        g.filter = Some(Box::new(Expr::IsNotNull(Box::new(arg.clone()))));
        if let FunctionArguments::List(l) = &mut g.args {
            l.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(call(
                "bq_flat_array",
                vec![arg],
            )))];
        }
    }
    let mut out = Expr::Function(g);
    if let Some(n) = count {
        out = call(
            "array_slice",
            vec![out, Expr::value(Value::Number("1".into(), false)), n],
        );
    }
    if name == "array_concat_agg" {
        out = call("flatten", vec![out]);
    }
    Ok(Some(out))
}

/// `ARRAY(SELECT e FROM … [ORDER BY …] [LIMIT …])` → `(SELECT
/// COALESCE(ARRAY_AGG(v ORDER BY k…), make_array()) FROM (SELECT e AS v,
/// key AS k… FROM …) AS a)`: the elements in the subquery's order (an
/// aggregate does not keep its input's), `[]` when it has no rows.
/// `SELECT AS STRUCT a, b` makes `STRUCT(a, b)` elements.
///
/// A subquery that refers to an outer FROM item (`WHERE o.customer_id =
/// c.customer_id`), a plain SELECT … FROM … WHERE …, becomes `(SELECT
/// COALESCE(ARRAY_AGG(e ORDER BY …), make_array()) FROM … WHERE …)`
/// instead: DataFusion takes no outer reference in a FROM subquery, but
/// decorrelates an aggregate scalar subquery (into a LEFT JOIN of the
/// aggregate grouped by the correlated columns); `[]` where no row matches.
fn array_subquery(q: &Query, outer: &[String], span: Span) -> Result<Expr> {
    let refuse = |why: &str| unsupported(format!("ARRAY(subquery) {why}"), span);
    let mut inner = q.clone();
    let correlated = refers_to_outer(q, outer);
    let mut keys: Vec<String> = Vec::new();
    let mut order_exprs: Vec<ast::OrderByExpr> = Vec::new();
    let mut field_aliases: Vec<(Ident, Expr)> = Vec::new();
    let ordered = inner.order_by.is_some();
    let mut positional = false;
    if let ast::SetExpr::Select(select) = inner.body.as_mut() {
        let as_struct = match &select.value_table_mode {
            None => false,
            Some(ast::ValueTableMode::AsStruct) => true,
            Some(ast::ValueTableMode::DistinctAsStruct) => {
                return Err(refuse("with SELECT DISTINCT AS STRUCT"));
            }
            Some(_) => return Err(refuse("with SELECT AS VALUE")),
        };
        let item_expr = |item: &ast::SelectItem| match item {
            ast::SelectItem::UnnamedExpr(e) => Some((e.clone(), None)),
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                Some((expr.clone(), Some(alias.clone())))
            }
            _ => None,
        };
        let (value, alias) = if as_struct {
            let mut values = Vec::new();
            for item in &select.projection {
                let Some((e, alias)) = item_expr(item) else {
                    return Err(refuse("with * in SELECT AS STRUCT"));
                };
                if let Some(a) = &alias {
                    field_aliases.push((a.clone(), e.clone()));
                }
                let name = alias.or_else(|| match &e {
                    Expr::Identifier(i) => Some(i.clone()),
                    Expr::CompoundIdentifier(parts) => parts.last().cloned(),
                    _ => None,
                });
                values.push(match name {
                    // `f0_`, … are names given to unnamed items.
                    Some(n)
                        if !(n.value.len() > 2
                            && n.value.starts_with('f')
                            && n.value.ends_with('_')
                            && n.value[1..n.value.len() - 1]
                                .chars()
                                .all(|c| c.is_ascii_digit())) =>
                    {
                        Expr::Named {
                            expr: Box::new(e),
                            name: n,
                        }
                    }
                    _ => return Err(refuse("with an unnamed field in SELECT AS STRUCT")),
                });
            }
            select.value_table_mode = None;
            (
                Expr::Struct {
                    values,
                    fields: vec![],
                },
                None,
            )
        } else {
            match select.projection.as_slice() {
                [item] => match item_expr(item) {
                    Some(v) => v,
                    None if ordered => return Err(refuse("of SELECT * with ORDER BY")),
                    None => {
                        positional = true;
                        (Expr::value(Value::Null), None)
                    }
                },
                _ => {
                    return Err(BqError::Sql {
                        message:
                            "ARRAY(subquery) needs a subquery of one column (or SELECT AS STRUCT)"
                                .into(),
                        position: position(span),
                    });
                }
            }
        };
        if !positional {
            let mut projection = vec![ast::SelectItem::ExprWithAlias {
                expr: value.clone(),
                alias: ident("__bq_v"),
            }];
            if let Some(order) = &inner.order_by {
                let ast::OrderByKind::Expressions(items) = &order.kind else {
                    return Err(refuse("with ORDER BY ALL"));
                };
                for (i, o) in items.iter().enumerate() {
                    // `ORDER BY x` of a field `… AS x` of SELECT AS STRUCT.
                    let aliased = match &o.expr {
                        Expr::Identifier(id) => field_aliases
                            .iter()
                            .find(|(a, _)| a.value.eq_ignore_ascii_case(&id.value))
                            .map(|(_, e)| e.clone()),
                        _ => None,
                    };
                    let o = &ast::OrderByExpr {
                        expr: aliased.unwrap_or_else(|| o.expr.clone()),
                        options: o.options,
                        with_fill: None,
                    };
                    let is_value = match &o.expr {
                        Expr::Value(v) => matches!(&v.value, Value::Number(n, _) if n == "1"),
                        Expr::Identifier(id) => alias
                            .as_ref()
                            .is_some_and(|a| a.value.eq_ignore_ascii_case(&id.value)),
                        other => *other == value,
                    };
                    let key = if is_value {
                        "`__bq_v`".to_string()
                    } else {
                        if select.distinct.is_some() {
                            return Err(refuse("with DISTINCT and ORDER BY another expression"));
                        }
                        if matches!(&o.expr, Expr::Value(_)) {
                            return Err(refuse("with ORDER BY a position"));
                        }
                        projection.push(ast::SelectItem::ExprWithAlias {
                            expr: o.expr.clone(),
                            alias: ident(&format!("__bq_k{i}")),
                        });
                        format!("`__bq_k{i}`")
                    };
                    let dir = match o.options.asc {
                        Some(false) => " DESC",
                        _ => " ASC",
                    };
                    let nulls = match o.options.nulls_first {
                        Some(true) => " NULLS FIRST",
                        Some(false) => " NULLS LAST",
                        None => "",
                    };
                    keys.push(format!("{key}{dir}{nulls}"));
                    order_exprs.push(ast::OrderByExpr {
                        expr: if is_value {
                            value.clone()
                        } else {
                            o.expr.clone()
                        },
                        options: o.options,
                        with_fill: None,
                    });
                }
            }
            select.projection = projection;
            let plain = inner.with.is_none()
                && inner.limit_clause.is_none()
                && inner.fetch.is_none()
                && select.distinct.is_none()
                && select.having.is_none()
                && select.qualify.is_none()
                && select.named_window.is_empty()
                && matches!(&select.group_by, ast::GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty());
            if correlated && plain {
                let mut agg = call("array_agg", vec![value]);
                if let Expr::Function(f) = &mut agg
                    && let FunctionArguments::List(l) = &mut f.args
                    && !order_exprs.is_empty()
                {
                    l.clauses
                        .push(ast::FunctionArgumentClause::OrderBy(order_exprs));
                }
                select.projection = vec![ast::SelectItem::ExprWithAlias {
                    expr: call("coalesce", vec![agg, call("make_array", vec![])]),
                    alias: ident("__bq_v"),
                }];
                inner.order_by = None;
                return Ok(Expr::Subquery(Box::new(inner)));
            }
        }
    } else if ordered {
        return Err(refuse("of a set operation with ORDER BY"));
    } else {
        positional = true;
    }
    if correlated {
        return Err(refuse(
            "that refers to the outer query, with DISTINCT, GROUP BY, HAVING, LIMIT, WITH, a set operation or SELECT *",
        ));
    }
    // The subquery's own ORDER BY (kept for its LIMIT) by a field's alias.
    if let Some(order) = &mut inner.order_by
        && let ast::OrderByKind::Expressions(items) = &mut order.kind
    {
        for o in items {
            if let Expr::Identifier(id) = &o.expr
                && let Some((_, e)) = field_aliases
                    .iter()
                    .find(|(a, _)| a.value.eq_ignore_ascii_case(&id.value))
            {
                o.expr = e.clone();
            }
        }
    }
    let order = if keys.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", keys.join(", "))
    };
    let columns = if positional { "(`__bq_v`)" } else { "" };
    let template = format!(
        "(SELECT COALESCE(ARRAY_AGG(`__bq_v`{order}), make_array()) FROM (SELECT 1) AS `__bq_a`{columns})"
    );
    let mut e = parser(&template)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| BqError::Engine(format!("rewriting ARRAY(subquery): {e}")))?;
    if let Expr::Subquery(outer) = &mut e
        && let ast::SetExpr::Select(select) = outer.body.as_mut()
        && let Some(from) = select.from.first_mut()
        && let TableFactor::Derived { subquery, .. } = &mut from.relation
    {
        **subquery = inner;
    }
    Ok(e)
}

/// Whether a query names a FROM item of an enclosing query (`c.x` where
/// `c` is one of `outer` and no FROM item of the query itself).
fn refers_to_outer(q: &Query, outer: &[String]) -> bool {
    use ast::{Visit, Visitor};
    struct Names(Vec<String>, Vec<String>);
    impl Visitor for Names {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            if let Some(n) = relation_name(t) {
                self.0.push(n.value.to_lowercase());
            }
            if let TableFactor::UNNEST { alias: Some(a), .. } = t {
                self.0.push(a.name.value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(parts) = e
                && parts.len() >= 2
            {
                self.1.push(parts[0].value.to_lowercase());
            }
            ControlFlow::Continue(())
        }
    }
    if outer.is_empty() {
        return false;
    }
    let mut n = Names(Vec::new(), Vec::new());
    let _ = q.visit(&mut n);
    n.1.iter()
        .any(|f| !n.0.contains(f) && outer.iter().any(|o| o.eq_ignore_ascii_case(f)))
}

fn position_span(e: &Expr) -> Span {
    e.span()
}

/// The JSON functions ([`json_function`]).
const JSON_FUNCTIONS: &[&str] = &[
    "json_query",
    "json_extract",
    "json_value",
    "json_extract_scalar",
    "json_query_array",
    "json_extract_array",
    "json_value_array",
    "json_extract_string_array",
    "json_type",
    "json_keys",
    "parse_json",
    "json_array",
    "json_object",
    "json_set",
    "json_remove",
    "json_strip_nulls",
    "json_array_insert",
    "json_array_append",
    "int64",
    "bool",
    "float64",
    "double",
    "string",
];

/// The named argument that carries the arguments' [`Kind`]s from
/// [`note_json_kinds`] to [`json_function`].
const KINDS_ARG: &str = "__bq_json_kinds";

/// A function's name without `SAFE.`, lower case.
fn base_function_name(f: &Function) -> String {
    let full = object_name_text(&f.name).to_ascii_lowercase();
    match full.split_once('.') {
        Some(("safe", inner)) => inner.to_string(),
        _ => full,
    }
}

/// Whether `e` is a JSON value by its form.
fn makes_json(e: &Expr) -> bool {
    match e {
        Expr::Nested(inner) => makes_json(inner),
        Expr::TypedString(ts) => ts.data_type == SqlType::JSON,
        Expr::Cast { data_type, .. } => *data_type == SqlType::JSON,
        Expr::CompoundFieldAccess { root, .. } => makes_json(root),
        Expr::Function(f) => match base_function_name(f).as_str() {
            "parse_json" | "to_json" | "json_object" | "json_array" | "json_set"
            | "json_remove" | "json_strip_nulls" | "json_array_insert" | "json_array_append" => {
                true
            }
            "json_query" | "json_extract" => match &f.args {
                FunctionArguments::List(l) => {
                    l.args.first().and_then(arg_expr).is_some_and(makes_json)
                }
                _ => false,
            },
            _ => false,
        },
        _ => false,
    }
}

/// What a JSON function's argument is, by its form (see [`Kind`]): JSON,
/// a value that holds no JSON and reads no column (its strings are
/// strings), or either.
fn json_kind(e: &Expr) -> Kind {
    use ast::{Visit, Visitor};
    if makes_json(e) {
        return Kind::Json;
    }
    // A bare NULL takes the type the function wants.
    if is_null_literal(e) {
        return Kind::Any;
    }
    struct Mixed;
    impl Visitor for Mixed {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let mixed = makes_json(e)
                || matches!(
                    e,
                    Expr::Identifier(_)
                        | Expr::CompoundIdentifier(_)
                        | Expr::Subquery(_)
                        | Expr::Exists { .. }
                        | Expr::InSubquery { .. }
                )
                || matches!(e, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
                || matches!(e, Expr::Function(f) if matches!(base_function_name(f).as_str(), "json_query" | "json_extract"));
            if mixed {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    if e.visit(&mut Mixed).is_break() {
        Kind::Any
    } else {
        Kind::Str
    }
}

/// Before a JSON function's arguments are rewritten (`JSON '…'` becomes a
/// STRING): notes what each is, as the argument `__bq_json_kinds => 'JSON,STRING,…'`.
fn note_json_kinds(e: &mut Expr) {
    let Expr::Function(f) = e else { return };
    if !JSON_FUNCTIONS.contains(&base_function_name(f).as_str()) {
        return;
    }
    let FunctionArguments::List(l) = &mut f.args else {
        return;
    };
    if l.args
        .iter()
        .any(|a| matches!(a, FunctionArg::Named { name, .. } if name.value == KINDS_ARG))
    {
        return;
    }
    let kinds: Vec<&str> = l
        .args
        .iter()
        .filter_map(arg_expr)
        .map(|a| json_kind(a).name())
        .collect();
    l.args.push(FunctionArg::Named {
        name: ident(KINDS_ARG),
        arg: FunctionArgExpr::Expr(string_lit(&kinds.join(","))),
        operator: ast::FunctionArgOperator::RightArrow,
    });
}

/// `(expr).field` → `(expr)['field']`, which DataFusion plans (as STRUCT
/// field access, or JSON field access: see `typed::JsonFieldPlanner`).
fn dots_to_subscripts(e: &mut Expr) {
    let Expr::CompoundFieldAccess { access_chain, .. } = e else {
        return;
    };
    let field = |name: &str| {
        ast::AccessExpr::Subscript(ast::Subscript::Index {
            index: string_lit(name),
        })
    };
    let mut out = Vec::with_capacity(access_chain.len());
    for a in access_chain.drain(..) {
        match a {
            ast::AccessExpr::Dot(Expr::Identifier(i)) => out.push(field(&i.value)),
            // `x.array[0]`: sqlparser reads `array[0]` as an array literal.
            ast::AccessExpr::Dot(Expr::Array(arr)) if arr.named && arr.elem.len() == 1 => {
                out.push(field("array"));
                out.push(ast::AccessExpr::Subscript(ast::Subscript::Index {
                    index: arr.elem[0].clone(),
                }));
            }
            other => out.push(other),
        }
    }
    *access_chain = out;
}

/// A JSON function (`name` is one of [`JSON_FUNCTIONS`]) → its `bq_json_*` UDF.
fn json_function(name: &str, f: &Function, safe: bool, span: Span) -> Result<Expr> {
    let upper = name.to_uppercase();
    let sql_error = |message: String| BqError::Sql {
        message,
        position: position(span),
    };
    let mut positional: Vec<Expr> = Vec::new();
    let mut named: Vec<(String, Expr)> = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    if let FunctionArguments::List(l) = &f.args {
        if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
            return Err(unsupported(
                format!("{upper} with DISTINCT or clauses"),
                span,
            ));
        }
        for a in &l.args {
            match a {
                FunctionArg::Named {
                    name: n,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } if n.value == KINDS_ARG => {
                    if let Expr::Value(v) = e
                        && let Value::SingleQuotedString(text) = &v.value
                    {
                        kinds = text
                            .split(',')
                            .map(|k| match k {
                                "JSON" => Kind::Json,
                                "STRING" => Kind::Str,
                                _ => Kind::Any,
                            })
                            .collect();
                    }
                }
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    if !named.is_empty() {
                        return Err(sql_error(format!(
                            "call to {upper} must not specify positional arguments after named arguments"
                        )));
                    }
                    positional.push(e.clone());
                }
                FunctionArg::Named {
                    name: n,
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => named.push((n.value.to_lowercase(), e.clone())),
                FunctionArg::ExprNamed {
                    name: Expr::Identifier(n),
                    arg: FunctionArgExpr::Expr(e),
                    ..
                } => named.push((n.value.to_lowercase(), e.clone())),
                other => {
                    return Err(unsupported(
                        format!("{upper} with the argument {other}"),
                        span,
                    ));
                }
            }
        }
    }
    let kind_of = |i: usize| kinds.get(i).copied().unwrap_or(Kind::Any);
    let allowed: &[&str] = match name {
        "float64" | "double" | "parse_json" => &["wide_number_mode"],
        "json_keys" => &["mode"],
        "json_set" => &["create_if_missing"],
        "json_strip_nulls" => &["include_arrays", "remove_empty"],
        "json_array_insert" => &["insert_each_element"],
        "json_array_append" => &["append_each_element"],
        _ => &[],
    };
    if let Some((n, _)) = named.iter().find(|(n, _)| !allowed.contains(&n.as_str())) {
        return Err(sql_error(format!("{upper} has no argument named {n}")));
    }
    let named_arg = |n: &str| named.iter().find(|(m, _)| m == n).map(|(_, e)| e.clone());
    let count = |range: std::ops::RangeInclusive<usize>| {
        if range.contains(&positional.len()) {
            Ok(())
        } else {
            Err(sql_error(format!(
                "{upper} takes {} to {} arguments, got {}",
                range.start(),
                range.end(),
                positional.len()
            )))
        }
    };
    // Functions of JSON values only (BigQuery has no STRING form of them).
    let json_only = || {
        if kind_of(0) == Kind::Str {
            Err(unsupported(
                format!("{upper} of a value that is not JSON"),
                span,
            ))
        } else {
            Ok(())
        }
    };
    let kind_lit = |i: usize| string_lit(kind_of(i).name());
    let kinds_lit = || {
        string_lit(
            &(0..positional.len())
                .map(|i| kind_of(i).name())
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    let bool_lit = |b: bool| Expr::value(Value::Boolean(b));
    let path_or_root = |i: usize| {
        positional
            .get(i)
            .cloned()
            .unwrap_or_else(|| string_lit("$"))
    };
    let udf = |base: &str| {
        if safe {
            format!("bq_safe_{}", base.trim_start_matches("bq_"))
        } else {
            base.to_string()
        }
    };
    Ok(match name {
        "json_query" | "json_extract" => {
            count(2..=2)?;
            call(
                &format!("bq_{name}"),
                vec![positional[0].clone(), positional[1].clone(), kind_lit(0)],
            )
        }
        "json_value"
        | "json_extract_scalar"
        | "json_query_array"
        | "json_extract_array"
        | "json_value_array"
        | "json_extract_string_array" => {
            count(1..=2)?;
            call(
                &format!("bq_{name}"),
                vec![positional[0].clone(), path_or_root(1), kind_lit(0)],
            )
        }
        "json_type" => {
            count(1..=1)?;
            json_only()?;
            call("bq_json_type", vec![positional[0].clone(), kind_lit(0)])
        }
        "int64" | "bool" | "float64" | "double" | "string" => {
            count(1..=1)?;
            json_only()?;
            let target = if name == "double" { "float64" } else { name };
            let mode = named_arg("wide_number_mode").unwrap_or_else(|| string_lit("round"));
            call(
                &udf(&format!("bq_json_{target}")),
                vec![positional[0].clone(), mode, kind_lit(0)],
            )
        }
        "json_keys" => {
            count(1..=2)?;
            json_only()?;
            let depth = positional
                .get(1)
                .cloned()
                .unwrap_or_else(|| cast(Expr::value(Value::Null), SqlType::BigInt(None)));
            let mode = named_arg("mode").unwrap_or_else(|| string_lit("strict"));
            call(
                "bq_json_keys",
                vec![positional[0].clone(), depth, mode, kind_lit(0)],
            )
        }
        "parse_json" => {
            count(1..=1)?;
            let mode = named_arg("wide_number_mode").unwrap_or_else(|| string_lit("exact"));
            call("bq_parse_json", vec![positional[0].clone(), mode])
        }
        "json_array" => {
            let mut args = vec![kinds_lit()];
            args.extend(positional.iter().cloned());
            call("bq_json_array", args)
        }
        "json_object" => {
            let mut args = vec![kinds_lit()];
            args.extend(positional.iter().cloned());
            call(&udf("bq_json_object"), args)
        }
        "json_set" | "json_array_insert" | "json_array_append" => {
            if positional.len() < 3 || positional.len().is_multiple_of(2) {
                return Err(sql_error(format!(
                    "call to {upper} is missing repeated arguments (a JSON value, then pairs of a JSONPath and a value)"
                )));
            }
            json_only()?;
            let flag = match name {
                "json_set" => named_arg("create_if_missing"),
                "json_array_insert" => named_arg("insert_each_element"),
                _ => named_arg("append_each_element"),
            }
            .unwrap_or_else(|| bool_lit(true));
            let mut args = vec![kinds_lit(), positional[0].clone(), flag];
            args.extend(positional[1..].iter().cloned());
            call(&format!("bq_{name}"), args)
        }
        "json_remove" => {
            if positional.len() < 2 {
                return Err(sql_error(format!(
                    "{upper} takes a JSON value and JSONPaths"
                )));
            }
            json_only()?;
            call("bq_json_remove", positional.clone())
        }
        "json_strip_nulls" => {
            count(1..=2)?;
            json_only()?;
            call(
                "bq_json_strip_nulls",
                vec![
                    positional[0].clone(),
                    path_or_root(1),
                    named_arg("include_arrays").unwrap_or_else(|| bool_lit(true)),
                    named_arg("remove_empty").unwrap_or_else(|| bool_lit(false)),
                ],
            )
        }
        _ => return Err(unsupported(format!("function {upper}"), span)),
    })
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

/// The field names of an array literal of STRUCTs (`[STRUCT(1 AS a, 2 AS
/// b), …]`, `ARRAY<STRUCT<a INT64>>[…]`), when its first element names them all.
fn struct_fields(e: &Expr) -> Option<Vec<Ident>> {
    // `CAST([…] AS ARRAY<STRUCT<a T, …>>)` (from `ARRAY<STRUCT<…>>[…]`).
    if let Expr::Cast {
        data_type: SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(inner)),
        ..
    } = e
        && let SqlType::Struct(fields, _) = inner.as_ref()
    {
        let names: Option<Vec<Ident>> = fields.iter().map(|f| f.field_name.clone()).collect();
        return names.filter(|n| !n.is_empty());
    }
    let Expr::Array(a) = e else { return None };
    let Some(Expr::Struct { values, fields }) = a.elem.first() else {
        return None;
    };
    let names: Option<Vec<Ident>> = if fields.is_empty() {
        values
            .iter()
            .map(|v| match v {
                Expr::Named { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    } else {
        fields.iter().map(|f| f.field_name.clone()).collect()
    };
    names.filter(|n| !n.is_empty())
}

/// A FROM item `UNNEST([STRUCT(1 AS a, …), …]) [AS t]` → `(SELECT
/// u.u.a AS a, … FROM UNNEST(…) AS u) [AS t]`: in BigQuery the fields of
/// unnested STRUCTs are the columns (`SELECT a FROM UNNEST(…)`); in
/// DataFusion the STRUCT is one column.
fn struct_unnest(unnest: &TableFactor) -> Result<TableFactor> {
    let u = OneUnnest::of(unnest, "of STRUCTs")?;
    let fields = struct_fields(u.expr).unwrap_or_default();
    let columns: Vec<String> = fields
        .iter()
        .map(|f| {
            let q = format!("`{}`", f.value.replace('`', ""));
            format!("`__bq_u`.`__bq_u`.{q} AS {q}")
        })
        .collect();
    let alias = u
        .alias
        .map(|a| format!(" AS `{}`", a.name.value.replace('`', "")))
        .unwrap_or_default();
    u.parse(&format!(
        "(SELECT {} FROM UNNEST({}) AS `__bq_u`){alias}",
        columns.join(", "),
        u.expr
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
        format!(
            "generate_series(0, CAST(cardinality({}) AS INT64) - 1)",
            self.expr
        )
    }

    /// The rewritten FROM item.
    fn parse(&self, sql: &str) -> Result<TableFactor> {
        parser(sql)
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

/// An UNNEST of arrays that name no column and have no subquery
/// (`UNNEST([1, 2])`, `UNNEST(ARRAY<STRUCT<…>>[…])`): an ordinary FROM item
/// DataFusion joins like a table, with any join condition.
fn constant_unnest(t: &TableFactor) -> bool {
    use ast::{Visit, Visitor};
    struct Refers(bool);
    impl Visitor for Refers {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if matches!(
                e,
                Expr::Identifier(_)
                    | Expr::CompoundIdentifier(_)
                    | Expr::CompoundFieldAccess { .. }
                    | Expr::Subquery(_)
            ) {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<()> {
            self.0 = true;
            ControlFlow::Break(())
        }
    }
    let TableFactor::UNNEST { array_exprs, .. } = t else {
        return false;
    };
    let mut r = Refers(false);
    for e in array_exprs {
        let _ = e.visit(&mut r);
    }
    !r.0
}

/// Applies [`wrap_unnest`] to every UNNEST that follows a table in FROM.
fn lateral_unnest(select: &mut ast::Select) -> Result<()> {
    use ast::{JoinConstraint, JoinOperator};
    array_paths(select);
    // `ON TRUE`, or no condition: what BigQuery allows after a join to UNNEST.
    let on_true = |c: &JoinConstraint| match c {
        JoinConstraint::None => true,
        JoinConstraint::On(e) => {
            matches!(e, Expr::Value(v) if v.value == ast::Value::Boolean(true))
        }
        _ => false,
    };
    // Conditions of `JOIN UNNEST(t.arr) AS x ON cond`, moved to WHERE.
    let mut filters: Vec<Expr> = Vec::new();
    // Whether a later join keeps rows the condition would drop (RIGHT, FULL).
    let outer_later = |joins: &[ast::Join]| {
        joins.iter().any(|j| {
            !matches!(
                j.join_operator,
                JoinOperator::CrossJoin(_)
                    | JoinOperator::Join(_)
                    | JoinOperator::Inner(_)
                    | JoinOperator::Left(_)
                    | JoinOperator::LeftOuter(_)
            )
        })
    };
    let several = select.from.len() > 1;
    for twj in &mut select.from {
        while let Some(first) = twj.joins.first() {
            let (cross, left) = match &first.join_operator {
                JoinOperator::CrossJoin(c) | JoinOperator::Join(c) | JoinOperator::Inner(c) => {
                    (on_true(c), false)
                }
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (false, on_true(c)),
                _ => (false, false),
            };
            // `t JOIN UNNEST(t.arr) AS x ON cond`: `t, UNNEST(t.arr) AS x
            // WHERE cond`, the same rows while no later join is RIGHT or FULL.
            let condition = match &first.join_operator {
                JoinOperator::Join(JoinConstraint::On(e))
                | JoinOperator::Inner(JoinConstraint::On(e))
                    if !cross
                        && !several
                        && !constant_unnest(&first.relation)
                        && !outer_later(&twj.joins[1..]) =>
                {
                    Some(e.clone())
                }
                _ => None,
            };
            if !(is_unnest(&first.relation) && (cross || left || condition.is_some()))
                || is_unnest(&twj.relation)
            {
                break;
            }
            let j = twj.joins.remove(0);
            twj.relation = wrap_unnest(&twj.relation, &j.relation, left)?;
            filters.extend(condition);
        }
        if let Some(j) = twj
            .joins
            .iter()
            .find(|j| is_unnest(&j.relation) && !constant_unnest(&j.relation))
            && !is_unnest(&twj.relation)
        {
            let first = std::ptr::eq(j, &twj.joins[0]);
            return Err(BqError::Unsupported {
                construct: if first {
                    format!(
                        "{} UNNEST(…) of a column with an ON condition here",
                        j.join_operator_name()
                    )
                } else {
                    format!(
                        "{} UNNEST after a join (move the join into a subquery)",
                        j.join_operator_name()
                    )
                },
                position: None,
            });
        }
    }
    for f in filters {
        select.selection = Some(match select.selection.take() {
            None => f,
            Some(w) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(w))),
                op: ast::BinaryOperator::And,
                right: Box::new(Expr::Nested(Box::new(f))),
            },
        });
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

/// A WITH query that calls `RAND()` or `GENERATE_UUID()` and is read more
/// than once: BigQuery evaluates it once, so every reference sees the same
/// values, while DataFusion evaluates it per reference. Refused rather
/// than answered differently.
fn volatile_cte(query: &Query) -> Option<BqError> {
    use ast::{Visit, Visitor};
    let with = query.with.as_ref()?;
    struct Volatile(Option<Span>);
    impl Visitor for Volatile {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e
                && matches!(
                    object_name_text(&f.name).to_ascii_lowercase().as_str(),
                    "rand" | "generate_uuid"
                )
            {
                self.0 = Some(object_name_span(&f.name));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    struct Reads<'a>(&'a str, usize);
    impl Visitor for Reads<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, .. } = t
                && object_name_text(name).eq_ignore_ascii_case(self.0)
            {
                self.1 += 1;
            }
            ControlFlow::Continue(())
        }
    }
    for cte in &with.cte_tables {
        let mut v = Volatile(None);
        let _ = cte.query.visit(&mut v);
        let Some(span) = v.0 else { continue };
        let name = &cte.alias.name.value;
        let mut reads = Reads(name, 0);
        let _ = query.body.visit(&mut reads);
        for other in &with.cte_tables {
            let _ = other.query.visit(&mut reads);
        }
        if reads.1 > 1 {
            return Some(unsupported(
                format!(
                    "RAND()/GENERATE_UUID() in WITH query {name}, which is read {} times (BigQuery evaluates it once; the local warehouse would evaluate it for each read)",
                    reads.1
                ),
                span,
            ));
        }
    }
    None
}

/// `INTERSECT ALL`/`EXCEPT ALL`: BigQuery has only the DISTINCT forms, and
/// DataFusion's ALL forms do not count duplicates as the standard's do.
fn check_set_operations(body: &ast::SetExpr) -> Result<()> {
    let mut stack = vec![body];
    while let Some(b) = stack.pop() {
        if let ast::SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } = b
        {
            if matches!(op, ast::SetOperator::Intersect | ast::SetOperator::Except)
                && matches!(set_quantifier, ast::SetQuantifier::All)
            {
                return Err(BqError::Unsupported {
                    construct: format!("{op} ALL (BigQuery has {op} DISTINCT)"),
                    position: None,
                });
            }
            stack.push(left);
            stack.push(right);
        }
    }
    Ok(())
}

/// The name a FROM item's columns are qualified with: its alias, or a
/// table's last name (`t` of `FROM ds.t`); `None` for other items.
fn relation_name(t: &TableFactor) -> Option<Ident> {
    match t {
        TableFactor::Table {
            alias: Some(a),
            args: None,
            ..
        }
        | TableFactor::Derived { alias: Some(a), .. } => Some(a.name.clone()),
        TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } => match name.0.as_slice() {
            [.., ObjectNamePart::Identifier(i)] if !i.value.contains('.') => Some(i.clone()),
            _ => object_name_text(name)
                .rsplit('.')
                .next()
                .map(|t| Ident::with_quote('`', t)),
        },
        _ => None,
    }
}

/// One entry of what `SELECT *` stands for over joins with USING.
enum StarItem {
    /// A USING column, once.
    Merged(Ident),
    /// `rel.* EXCEPT (columns)` (`None`: a FROM item without a name).
    Relation(Option<Ident>, Vec<Ident>),
}

/// `a FULL JOIN b USING (k)` → `a FULL JOIN b ON a.k = b.k`, with the
/// unqualified `k` of the select list, WHERE, GROUP BY, HAVING, QUALIFY
/// and ORDER BY made BigQuery's USING column: `COALESCE(a.k, b.k)` for a
/// FULL JOIN, `b.k` for a RIGHT JOIN, `a.k` otherwise (DataFusion takes
/// `a.k` for all). `SELECT *` has the USING columns first, once, then the
/// others of the left side, then those of the right side, as in BigQuery.
///
/// Applies when the left side of each USING is one FROM item or the result
/// of an earlier USING on the column; otherwise a RIGHT or FULL JOIN USING
/// is refused (INNER and LEFT are left to DataFusion, whose answer is then
/// BigQuery's but for `SELECT *`'s column order).
fn using_joins(select: &mut ast::Select, order_by: Option<&mut ast::OrderBy>) -> Result<()> {
    use ast::{JoinConstraint, JoinOperator};
    let constraint = |op: &JoinOperator| match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c) => Some(c.clone()),
        _ => None,
    };
    let uses = |j: &ast::Join| {
        matches!(
            &j.join_operator,
            JoinOperator::Join(JoinConstraint::Using(_))
                | JoinOperator::Inner(JoinConstraint::Using(_))
                | JoinOperator::Left(JoinConstraint::Using(_))
                | JoinOperator::LeftOuter(JoinConstraint::Using(_))
                | JoinOperator::Right(JoinConstraint::Using(_))
                | JoinOperator::RightOuter(JoinConstraint::Using(_))
                | JoinOperator::FullOuter(JoinConstraint::Using(_))
                | JoinOperator::Semi(JoinConstraint::Using(_))
                | JoinOperator::Anti(JoinConstraint::Using(_))
        )
    };
    if !select.from.iter().any(|t| t.joins.iter().any(uses)) {
        return Ok(());
    }
    let outer = select.from.iter().any(|t| {
        t.joins.iter().any(|j| {
            matches!(
                &j.join_operator,
                JoinOperator::Right(JoinConstraint::Using(_))
                    | JoinOperator::RightOuter(JoinConstraint::Using(_))
                    | JoinOperator::FullOuter(JoinConstraint::Using(_))
            )
        })
    });
    let col = |rel: &Ident, c: &Ident| Expr::CompoundIdentifier(vec![rel.clone(), c.clone()]);
    let plan = || -> std::result::Result<_, String> {
        let mut merged: Vec<(Ident, Expr)> = Vec::new();
        let mut star: Vec<StarItem> = Vec::new();
        let mut conditions: Vec<(usize, usize, Expr)> = Vec::new();
        for (ti, twj) in select.from.iter().enumerate() {
            let first = relation_name(&twj.relation);
            let mut items = vec![StarItem::Relation(first.clone(), vec![])];
            let mut rels = vec![first];
            let mut local: Vec<(Ident, Expr)> = Vec::new();
            for (ji, j) in twj.joins.iter().enumerate() {
                let right = relation_name(&j.relation);
                let Some(JoinConstraint::Using(cols)) = constraint(&j.join_operator) else {
                    if uses(j) {
                        return Err(format!("{} … USING", j.join_operator_name()));
                    }
                    items.push(StarItem::Relation(right.clone(), vec![]));
                    rels.push(right);
                    continue;
                };
                let Some(r) = right.clone() else {
                    return Err("USING with a FROM item without a name (give it an alias)".into());
                };
                let mut conds = Vec::new();
                let mut new = Vec::new();
                for name in &cols {
                    let [ObjectNamePart::Identifier(c)] = name.0.as_slice() else {
                        return Err(format!("USING ({name})"));
                    };
                    let same = |i: &Ident| i.value.eq_ignore_ascii_case(&c.value);
                    let left = if let Some(p) = local.iter().position(|(i, _)| same(i)) {
                        items.retain(|s| !matches!(s, StarItem::Merged(i) if same(i)));
                        local.remove(p).1
                    } else if let [Some(l)] = rels.as_slice() {
                        if let Some(StarItem::Relation(_, except)) = items.first_mut() {
                            except.push(c.clone());
                        }
                        col(l, c)
                    } else {
                        return Err(format!(
                            "USING ({c}) after a join whose left side has several FROM items (write ON)"
                        ));
                    };
                    let right = col(&r, c);
                    conds.push(Expr::BinaryOp {
                        left: Box::new(left.clone()),
                        op: ast::BinaryOperator::Eq,
                        right: Box::new(right.clone()),
                    });
                    let value = match &j.join_operator {
                        JoinOperator::Right(_) | JoinOperator::RightOuter(_) => right,
                        JoinOperator::FullOuter(_) => call("coalesce", vec![left, right]),
                        _ => left,
                    };
                    new.push((c.clone(), value));
                }
                let on = conds
                    .into_iter()
                    .reduce(|a, b| Expr::BinaryOp {
                        left: Box::new(a),
                        op: ast::BinaryOperator::And,
                        right: Box::new(b),
                    })
                    .ok_or_else(|| "USING ()".to_string())?;
                conditions.push((ti, ji, on));
                let mut head: Vec<StarItem> = new
                    .iter()
                    .map(|(c, _)| StarItem::Merged(c.clone()))
                    .collect();
                head.append(&mut items);
                head.push(StarItem::Relation(
                    Some(r),
                    new.iter().map(|(c, _)| c.clone()).collect(),
                ));
                items = head;
                new.append(&mut local);
                local = new;
                rels.push(right);
            }
            for (c, _) in &local {
                if merged
                    .iter()
                    .any(|(m, _)| m.value.eq_ignore_ascii_case(&c.value))
                {
                    return Err(format!("USING ({c}) in two FROM items"));
                }
            }
            merged.extend(local);
            star.extend(items);
        }
        Ok((merged, star, conditions))
    };
    let refuse = |why: String| -> Result<()> {
        if outer {
            Err(BqError::Unsupported {
                construct: format!("RIGHT or FULL JOIN … USING: {why}"),
                position: None,
            })
        } else {
            Ok(())
        }
    };
    let (merged, star, conditions) = match plan() {
        Ok(p) => p,
        Err(why) => return refuse(why),
    };
    // `SELECT *` expanded: only a plain `*` over named FROM items.
    let mut stars = Vec::new();
    for item in &select.projection {
        if let ast::SelectItem::Wildcard(o) = item {
            if o.opt_ilike.is_some()
                || o.opt_exclude.is_some()
                || o.opt_except.is_some()
                || o.opt_replace.is_some()
                || o.opt_rename.is_some()
            {
                return refuse("SELECT * with EXCEPT or REPLACE".into());
            }
            if star
                .iter()
                .any(|s| matches!(s, StarItem::Relation(None, _)))
            {
                return refuse("SELECT * over a FROM item without a name".into());
            }
            let expanded: Vec<ast::SelectItem> = star
                .iter()
                .map(|s| match s {
                    StarItem::Merged(c) => ast::SelectItem::ExprWithAlias {
                        expr: merged
                            .iter()
                            .find(|(m, _)| m.value.eq_ignore_ascii_case(&c.value))
                            .map(|(_, e)| e.clone())
                            .unwrap_or_else(|| Expr::Identifier(c.clone())),
                        alias: c.clone(),
                    },
                    StarItem::Relation(r, except) => ast::SelectItem::QualifiedWildcard(
                        ast::SelectItemQualifiedWildcardKind::ObjectName(ObjectName::from(vec![
                            r.clone().unwrap_or_else(|| ident("_")),
                        ])),
                        ast::WildcardAdditionalOptions {
                            opt_except: except.split_first().map(|(f, rest)| {
                                ast::ExceptSelectItem {
                                    first_element: f.clone(),
                                    additional_elements: rest.to_vec(),
                                }
                            }),
                            ..Default::default()
                        },
                    ),
                })
                .collect();
            stars.push(expanded);
        }
    }
    for (ti, ji, on) in conditions {
        let op = &mut select.from[ti].joins[ji].join_operator;
        match op {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c) => *c = JoinConstraint::On(on),
            _ => {}
        }
    }
    let lookup = |i: &Ident| {
        merged
            .iter()
            .find(|(m, _)| m.value.eq_ignore_ascii_case(&i.value))
            .map(|(_, e)| e.clone())
    };
    // The select list's names; GROUP BY may name those given by AS, ORDER BY all.
    let mut outputs: HashSet<String> = HashSet::new();
    let mut aliased: HashSet<String> = HashSet::new();
    let mut projection = Vec::new();
    let mut stars = stars.into_iter();
    for item in std::mem::take(&mut select.projection) {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for s in stars.next().unwrap_or_default() {
                    if let ast::SelectItem::ExprWithAlias { alias, .. } = &s {
                        outputs.insert(alias.value.to_lowercase());
                    }
                    projection.push(s);
                }
            }
            ast::SelectItem::UnnamedExpr(Expr::Identifier(i)) if lookup(&i).is_some() => {
                outputs.insert(i.value.to_lowercase());
                projection.push(ast::SelectItem::ExprWithAlias {
                    expr: lookup(&i).unwrap_or(Expr::Identifier(i.clone())),
                    alias: i,
                });
            }
            ast::SelectItem::UnnamedExpr(mut e) => {
                replace_using_columns(&mut e, &merged);
                projection.push(ast::SelectItem::UnnamedExpr(e));
            }
            ast::SelectItem::ExprWithAlias { mut expr, alias } => {
                outputs.insert(alias.value.to_lowercase());
                aliased.insert(alias.value.to_lowercase());
                replace_using_columns(&mut expr, &merged);
                projection.push(ast::SelectItem::ExprWithAlias { expr, alias });
            }
            other => projection.push(other),
        }
    }
    select.projection = projection;
    let unshadowed: Vec<(Ident, Expr)> = merged
        .iter()
        .filter(|(m, _)| !outputs.contains(&m.value.to_lowercase()))
        .cloned()
        .collect();
    for e in select
        .selection
        .iter_mut()
        .chain(select.having.iter_mut())
        .chain(select.qualify.iter_mut())
    {
        replace_using_columns(e, &merged);
    }
    let unaliased: Vec<(Ident, Expr)> = merged
        .iter()
        .filter(|(m, _)| !aliased.contains(&m.value.to_lowercase()))
        .cloned()
        .collect();
    if let ast::GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        for e in exprs {
            replace_using_columns(e, &unaliased);
        }
    }
    if let Some(order) = order_by
        && let ast::OrderByKind::Expressions(items) = &mut order.kind
    {
        for o in items {
            replace_using_columns(&mut o.expr, &unshadowed);
        }
    }
    Ok(())
}

/// Replaces the unqualified names of `columns` in `e` (not in its
/// subqueries) by their expressions.
fn replace_using_columns(e: &mut Expr, columns: &[(Ident, Expr)]) {
    struct Replace<'a>(&'a [(Ident, Expr)], usize);
    impl VisitorMut for Replace<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.1 += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<()> {
            self.1 -= 1;
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if self.1 == 0
                && let Expr::Identifier(i) = e
                && let Some((_, v)) = self
                    .0
                    .iter()
                    .find(|(c, _)| c.value.eq_ignore_ascii_case(&i.value))
            {
                *e = v.clone();
            }
            ControlFlow::Continue(())
        }
    }
    if columns.is_empty() {
        return;
    }
    let _ = e.visit(&mut Replace(columns, 0));
}

/// Names the select list's expressions without a name as BigQuery does:
/// `f0_`, `f1_`, … in order (`SELECT a, 1 + 1, 'x'` gives `a`, `f0_`,
/// `f1_`). DataFusion would name them after their text, and refuse two
/// equal ones (`SELECT x + 1, x + 1`).
fn name_anonymous_columns(select: &mut ast::Select) {
    // The names FROM items go by: `t.a` of one of them is table.column.
    let mut relations: Vec<String> = Vec::new();
    for twj in &select.from {
        for rel in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
            match rel {
                TableFactor::Table { name, alias, .. } => relations.push(match alias {
                    Some(a) => a.name.value.to_lowercase(),
                    None => object_name_text(name)
                        .rsplit('.')
                        .next()
                        .unwrap_or_default()
                        .to_lowercase(),
                }),
                TableFactor::Derived { alias: Some(a), .. }
                | TableFactor::UNNEST { alias: Some(a), .. } => {
                    relations.push(a.name.value.to_lowercase());
                }
                _ => {}
            }
        }
    }
    let mut n = 0;
    for item in &mut select.projection {
        // `s.a` of a STRUCT column `s` is named `a`, as in BigQuery.
        if let ast::SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item
            && let Some(last) = parts.last()
            && (parts.len() > 2 || !relations.contains(&parts[0].value.to_lowercase()))
        {
            let alias = last.clone();
            let expr = Expr::CompoundIdentifier(parts.clone());
            *item = ast::SelectItem::ExprWithAlias { expr, alias };
            continue;
        }
        if let ast::SelectItem::UnnamedExpr(e) = item
            && !matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
        {
            let alias = Ident::with_quote('`', format!("f{n}_"));
            *item = ast::SelectItem::ExprWithAlias {
                expr: e.clone(),
                alias,
            };
            n += 1;
        }
    }
}

/// `FROM t, t.arr AS x` (a path into an earlier FROM item) → `FROM t,
/// UNNEST(t.arr) AS x`, BigQuery's implicit UNNEST; the alias defaults to
/// the path's last name.
fn array_paths(select: &mut ast::Select) {
    let mut aliases: Vec<String> = Vec::new();
    let alias_of = |t: &TableFactor| match t {
        TableFactor::Table { name, alias, .. } => Some(match alias {
            Some(a) => a.name.value.to_lowercase(),
            None => object_name_text(name)
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .to_lowercase(),
        }),
        TableFactor::Derived { alias: Some(a), .. }
        | TableFactor::UNNEST { alias: Some(a), .. } => Some(a.name.value.to_lowercase()),
        _ => None,
    };
    let path = |t: &mut TableFactor, aliases: &[String]| {
        if let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = t
            && name.0.len() >= 2
            && let Some(ObjectNamePart::Identifier(first)) = name.0.first()
            && aliases.contains(&first.value.to_lowercase())
        {
            let parts: Vec<Ident> = name
                .0
                .iter()
                .filter_map(|p| match p {
                    ObjectNamePart::Identifier(i) => Some(i.clone()),
                    _ => None,
                })
                .collect();
            let last = parts.last().cloned().unwrap_or_else(|| ident("x"));
            let alias = alias.clone().unwrap_or(TableAlias {
                explicit: true,
                name: last,
                columns: vec![],
                at: None,
            });
            *t = TableFactor::UNNEST {
                alias: Some(alias),
                array_exprs: vec![Expr::CompoundIdentifier(parts)],
                with_offset: false,
                with_offset_alias: None,
                with_ordinality: false,
            };
        }
    };
    for twj in &mut select.from {
        path(&mut twj.relation, &aliases);
        aliases.extend(alias_of(&twj.relation));
        for j in &mut twj.joins {
            path(&mut j.relation, &aliases);
            aliases.extend(alias_of(&j.relation));
        }
    }
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

/// A literal as DataFusion takes it: GoogleSQL's escapes applied (see
/// [`super::literals`]); BYTES literals as hex literals.
fn literal_value(v: &mut ast::ValueWithSpan) -> Result<()> {
    use super::literals::{hex, unescape_bytes, unescape_string};
    let bad = |e: String| BqError::Sql {
        message: format!("invalid literal {}: {e}", v.value),
        position: position(v.span),
    };
    let new = match &v.value {
        Value::SingleQuotedString(s)
        | Value::DoubleQuotedString(s)
        | Value::TripleSingleQuotedString(s)
        | Value::TripleDoubleQuotedString(s) => {
            Value::SingleQuotedString(unescape_string(s).map_err(bad)?)
        }
        Value::SingleQuotedRawStringLiteral(s)
        | Value::DoubleQuotedRawStringLiteral(s)
        | Value::TripleSingleQuotedRawStringLiteral(s)
        | Value::TripleDoubleQuotedRawStringLiteral(s) => Value::SingleQuotedString(s.clone()),
        Value::SingleQuotedByteStringLiteral(s)
        | Value::DoubleQuotedByteStringLiteral(s)
        | Value::TripleSingleQuotedByteStringLiteral(s)
        | Value::TripleDoubleQuotedByteStringLiteral(s) => {
            Value::HexStringLiteral(hex(&unescape_bytes(s).map_err(bad)?))
        }
        _ => return Ok(()),
    };
    v.value = new;
    Ok(())
}

impl VisitorMut for Rewriter<'_> {
    type Break = BqError;

    fn post_visit_value(&mut self, v: &mut ast::ValueWithSpan) -> ControlFlow<BqError> {
        match literal_value(v) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn post_visit_select(&mut self, _select: &mut ast::Select) -> ControlFlow<BqError> {
        self.from_aliases.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut ast::Select) -> ControlFlow<BqError> {
        let mut aliases = Vec::new();
        for twj in &select.from {
            for rel in std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)) {
                let alias = match rel {
                    TableFactor::Table { name, alias, .. } => Some(match alias {
                        Some(a) => a.name.value.to_lowercase(),
                        None => object_name_text(name)
                            .rsplit('.')
                            .next()
                            .unwrap_or_default()
                            .to_lowercase(),
                    }),
                    TableFactor::Derived { alias: Some(a), .. }
                    | TableFactor::UNNEST { alias: Some(a), .. } => {
                        Some(a.name.value.to_lowercase())
                    }
                    _ => None,
                };
                aliases.extend(alias);
            }
        }
        self.from_aliases.push(aliases);
        if let Err(e) = using_joins(select, None) {
            return ControlFlow::Break(e);
        }
        name_anonymous_columns(select);
        resolve_window_references(select);
        qualify_with_windows(select);
        for ast::NamedWindowDefinition(name, def) in &select.named_window {
            if let ast::NamedWindowExpr::WindowSpec(spec) = def
                && spec.window_frame.is_some()
            {
                self.framed_windows.insert(name.value.to_lowercase());
            }
        }
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
        if let Some(e) = volatile_cte(query) {
            return ControlFlow::Break(e);
        }
        if let Err(e) = check_set_operations(&query.body) {
            return ControlFlow::Break(e);
        }
        if let ast::SetExpr::Select(select) = query.body.as_mut()
            && let Err(e) = using_joins(select, query.order_by.as_mut())
        {
            return ControlFlow::Break(e);
        }
        if let Some(ast::LimitClause::LimitOffset { limit, offset, .. }) = &query.limit_clause {
            let counts = limit.iter().chain(offset.iter().map(|o| &o.value));
            for e in counts {
                if constant_int(e) == Some(None) {
                    return ControlFlow::Break(BqError::Sql {
                        message: "LIMIT and OFFSET must not be NULL".into(),
                        position: position(e.span()),
                    });
                }
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
                // `FROM t.arr` where `t` is a FROM item here or outside: an
                // array path (a correlated UNNEST), not a table.
                if let Some((first, _)) = text.split_once('.')
                    && self
                        .from_aliases
                        .iter()
                        .flatten()
                        .any(|a| a.eq_ignore_ascii_case(first))
                    && !self.ctes.contains(&first.to_ascii_lowercase())
                {
                    return ControlFlow::Break(unsupported(
                        format!("the array path {text} in FROM (write UNNEST({text}))"),
                        span,
                    ));
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
                with_offset: false,
                array_exprs,
                alias,
                ..
            } if array_exprs.len() == 1
                && alias
                    .as_ref()
                    .is_none_or(|a| a.columns.is_empty() && a.name.value != "__bq_u")
                && struct_fields(&array_exprs[0]).is_some() =>
            {
                match struct_unnest(factor) {
                    Ok(derived) => *factor = derived,
                    Err(e) => return ControlFlow::Break(e),
                }
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

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<BqError> {
        if let Expr::Subquery(q) = expr
            && let Err(e) = struct_subquery(q)
        {
            return ControlFlow::Break(e);
        }
        name_struct_fields(expr);
        week_part_arguments(expr);
        dots_to_subscripts(expr);
        array_subscripts(expr);
        note_json_kinds(expr);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<BqError> {
        if let Err(e) = check_null_operands(expr) {
            return ControlFlow::Break(e);
        }
        let replacement = match expr {
            Expr::Extract { field, expr: e, .. } => Some(extract(field, e)),
            Expr::Substring {
                expr: e,
                substring_from,
                substring_for,
                ..
            } => {
                let mut args = vec![
                    (**e).clone(),
                    substring_from
                        .as_deref()
                        .cloned()
                        .unwrap_or_else(|| Expr::value(Value::Number("1".into(), false))),
                ];
                args.extend(substring_for.as_deref().cloned());
                Some(call("bq_substr", args))
            }
            Expr::Array(a) => {
                name_struct_elements(&mut a.elem);
                None
            }
            Expr::Interval(_) => {
                if let Err(e) = split_interval(expr) {
                    return ControlFlow::Break(e);
                }
                None
            }
            Expr::Case {
                operand: None,
                conditions,
                ..
            } => {
                for c in conditions.iter_mut() {
                    c.condition = checked_condition(&c.condition, "CASE WHEN");
                }
                None
            }
            Expr::Identifier(i)
                if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("current_datetime") =>
            {
                Some(cast(
                    call("now", vec![]),
                    SqlType::Timestamp(Some(6), TimezoneInfo::None),
                ))
            }
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
            Expr::Cast {
                data_type,
                expr: inner,
                ..
            } if nested_type_parameters(data_type) => {
                return ControlFlow::Break(BqError::Unsupported {
                    construct: format!(
                        "type parameters inside a STRUCT or ARRAY type ({data_type}): their limits are not checked"
                    ),
                    position: position(inner.span()),
                });
            }
            // CAST(v AS STRING(n)) and CAST(v AS BYTES(n)): the cast, its
            // length checked.
            Expr::Cast {
                data_type: data_type @ (SqlType::String(Some(_)) | SqlType::Bytes(Some(_))),
                expr: inner,
                kind,
                array,
                format,
            } => {
                let (plain, max) = match data_type {
                    SqlType::String(Some(n)) => (SqlType::String(None), *n),
                    SqlType::Bytes(Some(n)) => (SqlType::Bytea, *n),
                    _ => unreachable!("matched above"),
                };
                let safe = matches!(kind, CastKind::SafeCast | CastKind::TryCast);
                let converted = Expr::Cast {
                    kind: kind.clone(),
                    expr: inner.clone(),
                    data_type: plain,
                    array: *array,
                    format: format.clone(),
                };
                Some(call(
                    if safe {
                        "bq_safe_max_length"
                    } else {
                        "bq_max_length"
                    },
                    vec![
                        converted,
                        Expr::value(Value::Number(max.to_string(), false)),
                    ],
                ))
            }
            // CAST(v AS RANGE<T>) of a value (a STRING, a RANGE): checked
            // and converted by `bq_range_cast`; CAST(NULL AS RANGE<T>) is
            // the engine's own cast to the struct type.
            Expr::Cast {
                data_type,
                expr: inner,
                kind,
                ..
            } if range_sql_element(data_type).is_some() && !is_null_literal(inner) => {
                let udf = if matches!(kind, CastKind::SafeCast | CastKind::TryCast) {
                    "bq_safe_range_cast"
                } else {
                    "bq_range_cast"
                };
                let mut ty = data_type.clone();
                fix_type(&mut ty);
                Some(call(
                    udf,
                    vec![(**inner).clone(), cast(Expr::value(Value::Null), ty)],
                ))
            }
            Expr::Cast {
                data_type,
                expr: inner,
                kind: CastKind::Cast,
                ..
            } if typed_literal(inner, data_type).is_some() => typed_literal(inner, data_type),
            Expr::Cast {
                data_type,
                expr: inner,
                ..
            } => {
                // A number literal cast to NUMERIC keeps all its digits (it
                // would go through FLOAT64 otherwise), as in BigQuery; so do
                // those of an array literal cast to ARRAY<NUMERIC>
                // (`ARRAY<BIGNUMERIC>[1.5, …]`).
                let decimal = |t: &SqlType| {
                    matches!(
                        t,
                        SqlType::Numeric(_)
                            | SqlType::Decimal(_)
                            | SqlType::BigNumeric(_)
                            | SqlType::BigDecimal(_)
                    )
                };
                if decimal(data_type) {
                    if let Some(text) = number_text(inner) {
                        **inner = string_lit(&text);
                    }
                } else if let SqlType::Array(ast::ArrayElemTypeDef::AngleBracket(elem)) = data_type
                    && decimal(elem)
                    && let Expr::Array(arr) = inner.as_mut()
                    && arr
                        .elem
                        .iter()
                        .all(|e| number_text(e).is_some() || is_null_literal(e))
                {
                    for e in arr.elem.iter_mut() {
                        if let Some(text) = number_text(e) {
                            *e = string_lit(&text);
                        }
                    }
                }
                fix_type(data_type);
                None
            }
            Expr::TypedString(ts) => {
                fix_type(&mut ts.data_type);
                None
            }
            // `STRUCT<a INT64, b STRING>(1, 'x')`.
            Expr::Struct { values, fields } if !fields.is_empty() => {
                match typed_struct(values, fields) {
                    Some(e) => Some(e),
                    None => {
                        for f in fields {
                            fix_type(&mut f.field_type);
                        }
                        None
                    }
                }
            }
            Expr::InUnnest {
                expr: e,
                array_expr,
                negated,
            } => {
                let has = call("bq_in_array", vec![(**e).clone(), (**array_expr).clone()]);
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
            sql.contains("bq_timestamp_diff(CAST(now() AS TIMESTAMP(6) WITH TIME ZONE), _PARTITIONTIME, 'MINUTE')"),
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
    fn typed_array_literals_become_casts() {
        assert_eq!(
            typed_array_literals("SELECT ARRAY<INT64>[1, 2], ARRAY<STRUCT<a INT64>>[(1)], x < y")
                .as_deref(),
            Some(
                "SELECT CAST([1, 2] AS ARRAY<INT64>), CAST([(1)] AS ARRAY<STRUCT<a INT64>>), x < y"
            )
        );
        assert_eq!(
            typed_array_literals("SELECT ARRAY<ARRAY<INT64>>[ARRAY<INT64>[]] -- c\n").as_deref(),
            Some("SELECT CAST([CAST([] AS ARRAY<INT64>)] AS ARRAY<ARRAY<INT64>>) -- c\n")
        );
        assert_eq!(typed_array_literals("SELECT CAST(x AS ARRAY<INT64>)"), None);
        assert_eq!(typed_array_literals("SELECT 'ARRAY<INT64>[1]'"), None);
    }

    #[test]
    fn parse_errors_have_positions() {
        let e = parse("SELECT a\nFROM t WHERE").unwrap_err();
        match e {
            BqError::Sql { position, .. } => assert_eq!(position.map(|p| p.line), Some(2)),
            other => panic!("{other}"),
        }
    }

    /// BigQuery SQL the parser lacks is refused as unsupported, not called a
    /// syntax error.
    #[test]
    fn set_operations_by_name_are_unsupported() {
        for sql in [
            "SELECT STRUCT()",
            "SELECT STRUCT<>() = STRUCT<>()",
            "SELECT CAST(b'abc' AS STRING FORMAT 'b' || 'ase2')",
            "SELECT SAFE_CAST('1' AS BYTES FORMAT \"x\"\n || 'y')",
        ] {
            assert!(
                matches!(parse(sql), Err(BqError::Unsupported { .. })),
                "{sql}: {:?}",
                parse(sql)
            );
        }
        // Syntax errors stay syntax errors, wherever the position falls.
        for sql in [
            "SELECT STRUCT(1,)x",
            "SELECT 'a' 'b' ||",
            "SELECT FORMAT('%d', 1) ||",
            "SELECT é FORMAT 'x' 1",
            "SELECT (\n\n",
            "\u{0}\u{ffff}FORMAT'",
        ] {
            assert!(
                !matches!(parse(sql), Err(BqError::Unsupported { .. }) | Ok(_)),
                "{sql}: {:?}",
                parse(sql)
            );
        }
        assert_eq!(
            text_before("ab\ncdé f", Position { line: 2, column: 4 }),
            Some("ab\ncdé")
        );
        assert_eq!(
            text_before("ab", Position { line: 1, column: 3 }),
            Some("ab")
        );
        assert_eq!(text_before("ab", Position { line: 1, column: 9 }), None);
        assert_eq!(text_before("ab", Position { line: 3, column: 1 }), None);
        assert_eq!(text_before("ab", Position { line: 1, column: 0 }), None);
        let e = parse("SELECT 1 AS a UNION ALL CORRESPONDING SELECT 2 AS a").unwrap_err();
        assert!(
            matches!(&e, BqError::Unsupported { construct, .. } if construct == "CORRESPONDING"),
            "{e}"
        );
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

#[cfg(test)]
mod join_and_struct_tests {
    use super::*;

    fn rewrite(sql: &str) -> Result<String> {
        let mut stmts = parse(sql)?;
        let Statement::Query(q) = &mut stmts[0] else {
            panic!("not a query")
        };
        let c: &'static QueryContext = Box::leak(Box::new(QueryContext {
            default_project: "p".into(),
            default_dataset: "d".into(),
            ..QueryContext::default()
        }));
        let mut r = Rewriter::new(c, &|_| true);
        r.rewrite_query(q)?;
        Ok(q.to_string())
    }

    #[test]
    fn using_columns_are_bigquerys() {
        let sql = rewrite(
            "SELECT customer_id, c.name FROM customers c FULL JOIN orders o USING (customer_id) GROUP BY customer_id, c.name ORDER BY customer_id",
        )
        .unwrap();
        assert!(
            sql.contains("coalesce(c.customer_id, o.customer_id) AS customer_id"),
            "{sql}"
        );
        let sql = rewrite("SELECT k, x.a, y.b FROM (SELECT 1 AS k, 'a1' AS a UNION ALL SELECT 2, 'a2') x FULL JOIN (SELECT 'b2' AS b, 2 AS k UNION ALL SELECT 'b3', 3) y USING (k) ORDER BY k").unwrap();
        assert!(sql.contains("coalesce(x.k, y.k) AS k"), "{sql}");
    }

    #[test]
    fn struct_fields_are_named_after_column_paths() {
        let sql = rewrite(
            "SELECT STRUCT(customer_id AS id, status, o.amount, s.a.b, 1 + 1, x AS status, o.id2) FROM orders o",
        )
        .unwrap();
        assert!(
            sql.contains(
                "STRUCT(customer_id AS id, status, o.amount AS amount, s.a.b AS b, 1 + 1, x AS status, o.id2 AS id2)"
            ),
            "{sql}"
        );
        // (`status` is taken by `x AS status`: left anonymous.) Typed STRUCTs
        // and tuples keep their own names.
        let sql = rewrite("SELECT STRUCT<a INT64>(x), (y, z) FROM t").unwrap();
        assert!(
            sql.contains("STRUCT(CAST(x AS BIGINT) AS a) AS `f0_`, (y, z) AS"),
            "{sql}"
        );
    }

    #[test]
    fn typed_struct_literals_take_values_by_position() {
        let sql = rewrite(
            "SELECT ARRAY<STRUCT<country STRING, vat_rate FLOAT64>>[('PL', 0.23), NULL], STRUCT<a INT64, n NUMERIC>(1, 1.5)",
        )
        .unwrap();
        assert!(
            sql.contains("[STRUCT(CAST('PL' AS STRING) AS country, CAST(0.23 AS DOUBLE) AS vat_rate), CAST(NULL AS STRUCT<country STRING, vat_rate DOUBLE>)]"),
            "{sql}"
        );
        assert!(
            sql.contains("STRUCT(CAST(1 AS BIGINT) AS a, CAST('1.5' AS DECIMAL(38,9)) AS n)"),
            "{sql}"
        );
        // A type parameter's limit would go unchecked: left to the engine,
        // which refuses the typed constructor.
        let sql = rewrite("SELECT STRUCT<s STRING(2)>('abc')").unwrap();
        assert!(sql.contains("STRUCT<s STRING(2)>('abc')"), "{sql}");
    }

    #[test]
    fn join_unnest_with_a_condition() {
        // An UNNEST of a constant array is an ordinary FROM item.
        let sql = rewrite(
            "SELECT c.name FROM customers c JOIN UNNEST([STRUCT('PL' AS country)]) AS v ON v.country = c.country",
        )
        .unwrap();
        assert!(
            sql.contains("JOIN (SELECT `__bq_u`.`__bq_u`.`country` AS `country` FROM UNNEST"),
            "{sql}"
        );
        // Of a column, INNER: the condition goes to WHERE.
        let sql = rewrite(
            "SELECT p.sku FROM products p JOIN UNNEST(p.tags) AS t ON t <> 'new' WHERE p.sku > 'P'",
        )
        .unwrap();
        assert!(
            sql.contains("WHERE (p.sku > 'P') AND (t <> 'new')"),
            "{sql}"
        );
        // LEFT, or before a FULL JOIN: refused.
        for sql in [
            "SELECT 1 FROM products p LEFT JOIN UNNEST(p.tags) AS t ON t = 'x'",
            "SELECT 1 FROM products p JOIN UNNEST(p.tags) AS t ON t = 'x' FULL JOIN q ON TRUE",
        ] {
            let e = rewrite(sql).unwrap_err().to_string();
            assert!(
                e.contains("UNNEST(…) of a column with an ON condition"),
                "{e}"
            );
        }
    }
}
