//! BigQuery's JSON functions on the warehouse's JSON values, which are
//! stored as STRING (their JSON text).
//!
//! A JSON value and a JSON-formatted STRING are both `Utf8` here, yet
//! BigQuery answers some functions differently for them (`JSON_QUERY` of a
//! JSON `null` is a JSON `null` for JSON, SQL `NULL` for STRING; a STRING
//! keeps duplicate keys). The rewriter ([`super::dialect`]) tells the UDFs
//! what each argument is by its form ([`Kind`]): `JSON '…'`, `PARSE_JSON`
//! and the JSON constructors are JSON, expressions that read no column and
//! make no JSON are STRING, anything else (a column) may be either; where
//! the two would answer differently for such a value, the function refuses
//! it as unsupported rather than guess.
//!
//! - [`parse`]: JSON text → [`Json`] (first of duplicate keys wins on lookup,
//!   numbers keep their text); [`Json::text`]: compact JSON text;
//! - [`parse_path`]: BigQuery's JSONPath (`$`, `.name`, `."quoted"`, `[0]`;
//!   the legacy functions also take `['name']` and `[name]`);
//! - the `bq_json_*` UDFs ([`udfs`]) that the rewriter calls.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder,
    StringBuilder,
};
use arrow::datatypes::{DataType, Field};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::typed::{float_to_string, type_name};
use super::udf::{DfResult, exec_err, plan_err};

/// What the local warehouse cannot answer exactly (BqError::Unsupported).
fn unsupported(what: impl Into<String>) -> DataFusionError {
    DataFusionError::NotImplemented(what.into())
}

// ---------------------------------------------------------------------------
// Values

/// A JSON value. Objects keep their members in order, duplicates included
/// (a JSON-formatted STRING keeps them; [`Json::deduplicated`] is the JSON
/// type's view); numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// How deep JSON may nest (the parser recurses).
const MAX_DEPTH: usize = 500;

/// Parses JSON text (RFC 8259; whitespace around the value allowed).
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected text after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("invalid JSON: {what} at offset {}", self.i)
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.text[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(self.err("unexpected word"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("expected a member name"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("expected ':'"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(Json::Number(self.text[start..self.i].to_string()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .text
            .get(self.i..self.i + 4)
            .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.i += 4;
        u32::from_str_radix(h, 16).map_err(|e| e.to_string())
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\' | 0..=0x1f) {
                self.i += 1;
            }
            // Stops only at ASCII bytes: char boundaries.
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or_else(|| self.err("unterminated string"))?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&u) {
                                if !self.text[self.i..].starts_with("\\u") {
                                    return Err(self.err("lone surrogate"));
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.err("lone surrogate"));
                                }
                                0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                u
                            };
                            out.push(char::from_u32(c).ok_or_else(|| self.err("lone surrogate"))?);
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                Some(_) => return Err(self.err("control character in a string")),
            }
        }
    }
}

/// Writes `s` as a JSON string: `"`, `\` and control characters escaped.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Json {
    /// Compact JSON text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }

    /// The value as the JSON type holds it: of duplicate keys, the first.
    pub fn deduplicated(self) -> Json {
        match self {
            Json::Array(items) => Json::Array(items.into_iter().map(Json::deduplicated).collect()),
            Json::Object(members) => {
                let mut out: Vec<(String, Json)> = Vec::with_capacity(members.len());
                for (k, v) in members {
                    if !out.iter().any(|(n, _)| *n == k) {
                        out.push((k, v.deduplicated()));
                    }
                }
                Json::Object(out)
            }
            other => other,
        }
    }

    /// Whether an object anywhere inside has a key twice.
    fn has_duplicates(&self) -> bool {
        match self {
            Json::Array(items) => items.iter().any(Json::has_duplicates),
            Json::Object(members) => {
                members
                    .iter()
                    .enumerate()
                    .any(|(i, (k, _))| members[..i].iter().any(|(n, _)| n == k))
                    || members.iter().any(|(_, v)| v.has_duplicates())
            }
            _ => false,
        }
    }

    fn is_scalar(&self) -> bool {
        !matches!(self, Json::Array(_) | Json::Object(_))
    }

    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

// ---------------------------------------------------------------------------
// Numbers

/// A decimal number's significant digits and exponent: the value is
/// `0.DIGITS × 10^exp` (no leading or trailing zeros in DIGITS; `""` for 0).
fn significant(text: &str) -> (bool, String, i64) {
    let (negative, t) = match text.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{int}{frac}");
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_matches('0').to_string();
    if digits.is_empty() {
        return (negative, digits, 0);
    }
    (negative, digits, int.len() as i64 - lead as i64 + exp)
}

/// Whether the number `text` is exactly the FLOAT64 `f`.
fn exactly(text: &str, f: f64) -> bool {
    if !f.is_finite() {
        return false;
    }
    let (n1, d1, e1) = significant(text);
    let (n2, d2, e2) = significant(&format!("{f:e}"));
    d1 == d2 && (d1.is_empty() || (n1 == n2 && e1 == e2))
}

/// `wide_number_mode`: `true` for 'exact', `false` for 'round'.
fn exact_mode(mode: &str) -> DfResult<bool> {
    match mode {
        "exact" => Ok(true),
        "round" => Ok(false),
        other => Err(exec_err(format!(
            "Invalid `wide_number_mode` specified: {other}"
        ))),
    }
}

/// Whether an integer number's text fits INT64 or UINT64 (the JSON type
/// keeps those exactly).
fn wide_integer(text: &str) -> bool {
    !text.contains(['.', 'e', 'E']) && (text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok())
}

/// A JSON number as FLOAT64 (DOUBLE(json), FLOAT64(json)).
fn number_to_double(text: &str, exact: bool) -> DfResult<f64> {
    let f: f64 = text
        .parse()
        .map_err(|_| exec_err(format!("JSON number {text} is not a number")))?;
    if !f.is_finite() {
        return Err(exec_err(format!(
            "JSON number: {text} cannot be converted to DOUBLE"
        )));
    }
    if exact && !exactly(text, f) {
        return Err(exec_err(format!(
            "JSON number: {text} cannot be converted to DOUBLE without loss of precision"
        )));
    }
    Ok(f)
}

/// A JSON number as INT64 (INT64(json)): integral and in range.
fn number_to_int(text: &str) -> DfResult<i64> {
    let bad = || {
        exec_err(format!(
            "The provided JSON number: {text} cannot be converted to an int64"
        ))
    };
    if let Ok(i) = text.parse::<i64>() {
        return Ok(i);
    }
    if !text.contains(['.', 'e', 'E']) {
        return Err(bad());
    }
    // The JSON type holds a number with a fraction or exponent as a
    // FLOAT64: beyond 2^53 its integer is not the text's.
    let (negative, digits, exp) = significant(text);
    if digits.is_empty() {
        return Ok(0);
    }
    if exp < digits.len() as i64 {
        return Err(bad());
    }
    if exp > 16 {
        return Err(unsupported(format!(
            "INT64 of the JSON number {text} (held as FLOAT64 by BigQuery's JSON type)"
        )));
    }
    let mut s = digits;
    while (s.len() as i64) < exp {
        s.push('0');
    }
    let v: i64 = s.parse().map_err(|_| bad())?;
    if v > 1 << 53 {
        return Err(unsupported(format!(
            "INT64 of the JSON number {text} (held as FLOAT64 by BigQuery's JSON type)"
        )));
    }
    Ok(if negative { -v } else { v })
}

/// A number as the JSON type holds it, for PARSE_JSON: INT64 and UINT64
/// exactly, others as FLOAT64 (`exact`: only when that loses nothing).
fn json_number(text: &str, exact: bool) -> DfResult<String> {
    if wide_integer(text) {
        return Ok(text.to_string());
    }
    let f: f64 = text
        .parse()
        .map_err(|_| exec_err(format!("invalid JSON number {text}")))?;
    if !f.is_finite() || (exact && !exactly(text, f)) {
        return Err(exec_err(format!(
            "JSON number: {text} cannot be stored in JSON without loss of precision"
        )));
    }
    Ok(float_to_string(f))
}

fn map_numbers(v: Json, f: &dyn Fn(&str) -> DfResult<String>) -> DfResult<Json> {
    Ok(match v {
        Json::Number(n) => Json::Number(f(&n)?),
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|v| map_numbers(v, f))
                .collect::<DfResult<_>>()?,
        ),
        Json::Object(members) => Json::Object(
            members
                .into_iter()
                .map(|(k, v)| Ok((k, map_numbers(v, f)?)))
                .collect::<DfResult<_>>()?,
        ),
        other => other,
    })
}

// ---------------------------------------------------------------------------
// JSONPath

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `.name`, `."name"`, `['name']`.
    Member(String),
    /// `[3]` (`usize::MAX` for an index too large to exist).
    Index(usize),
}

/// Parses a JSONPath: the standard form (`JSON_QUERY`, `JSON_VALUE`, …:
/// `.name`, `."a.b"`, `[0]`) or the legacy form (`JSON_EXTRACT`, …:
/// `.name`, `['a.b']`, `[name]`, `[0]`).
pub fn parse_path(path: &str, legacy: bool) -> DfResult<Vec<Step>> {
    let invalid = |why: &str| exec_err(format!("Invalid JSONPath {path}: {why}"));
    if path
        .trim_start()
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
    {
        let word = path.split_whitespace().next().unwrap_or("").to_lowercase();
        if matches!(word.as_str(), "lax" | "recursive") {
            return Err(unsupported(format!("the JSONPath mode {word} (in {path})")));
        }
    }
    let Some(rest) = path.strip_prefix('$') else {
        return Err(invalid("JSONPath must start with '$'"));
    };
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    let index = |digits: &str| Step::Index(digits.parse::<usize>().unwrap_or(usize::MAX));
    // A quoted name from `chars[i]` (the opening quote): its text and the
    // index after the closing quote.
    let quoted = |i: usize| -> DfResult<(String, usize)> {
        let q = chars[i];
        let mut out = String::new();
        let mut j = i + 1;
        loop {
            match chars.get(j) {
                None => return Err(invalid("unterminated quoted name")),
                Some('\\') => {
                    let c = *chars
                        .get(j + 1)
                        .ok_or_else(|| invalid("unterminated quoted name"))?;
                    out.push(c);
                    j += 2;
                }
                Some(c) if *c == q => return Ok((out, j + 1)),
                Some(c) => {
                    out.push(*c);
                    j += 1;
                }
            }
        }
    };
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if !legacy && chars.get(i) == Some(&'"') {
                    let (name, next) = quoted(i)?;
                    steps.push(Step::Member(name));
                    i = next;
                    continue;
                }
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() {
                    return Err(invalid("a '.' without a name"));
                }
                if name.contains(['*', ']', ' ']) || (!legacy && name.contains(['"', '\''])) {
                    return Err(invalid(&format!("unsupported name {name}")));
                }
                steps.push(Step::Member(name));
            }
            '[' => {
                i += 1;
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                match chars.get(i) {
                    Some('\'' | '"') if legacy => {
                        let (name, next) = quoted(i)?;
                        steps.push(Step::Member(name));
                        i = next;
                    }
                    _ => {
                        let start = i;
                        while i < chars.len() && chars[i] != ']' {
                            i += 1;
                        }
                        let token: String = chars[start..i].iter().collect();
                        let token = token.trim_end();
                        if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
                            steps.push(index(token));
                        } else if legacy
                            && !token.is_empty()
                            && !token.contains(['*', '[', '\'', '"', '-'])
                        {
                            steps.push(Step::Member(token.to_string()));
                        } else {
                            return Err(invalid(&format!("invalid subscript [{token}]")));
                        }
                    }
                }
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                if chars.get(i) != Some(&']') {
                    return Err(invalid("a '[' without its ']'"));
                }
                i += 1;
            }
            c => return Err(invalid(&format!("unexpected '{c}'"))),
        }
    }
    Ok(steps)
}

/// The value at `path` (of duplicate keys, the first).
pub fn lookup<'a>(v: &'a Json, path: &[Step]) -> Option<&'a Json> {
    let mut cur = v;
    for step in path {
        cur = match (cur, step) {
            (Json::Object(members), Step::Member(k)) => {
                members.iter().find(|(n, _)| n == k).map(|(_, v)| v)?
            }
            (Json::Array(items), Step::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn lookup_mut<'a>(v: &'a mut Json, path: &[Step]) -> Option<&'a mut Json> {
    let mut cur = v;
    for step in path {
        cur = match (cur, step) {
            (Json::Object(members), Step::Member(k)) => {
                members.iter_mut().find(|(n, _)| n == k).map(|(_, v)| v)?
            }
            (Json::Array(items), Step::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

// ---------------------------------------------------------------------------
// What an argument is

/// What the rewriter knows of an argument from its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON value.
    Json,
    /// Not JSON, and nothing inside it is: a STRING is a string.
    Str,
    /// Could be either (a column, a parameter, a mix).
    Any,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "JSON",
            Kind::Str => "STRING",
            Kind::Any => "ANY",
        }
    }

    fn of(s: &str) -> Kind {
        match s {
            "JSON" => Kind::Json,
            "STRING" => Kind::Str,
            _ => Kind::Any,
        }
    }
}

/// The JSON text `text` of a value of `kind` read as JSON: the JSON type's
/// view for JSON, the text's own (duplicates kept) for a STRING.
fn read(text: &str, kind: Kind, function: &str) -> DfResult<Json> {
    match parse(text) {
        Ok(v) if kind == Kind::Json => Ok(v.deduplicated()),
        Ok(v) => Ok(v),
        Err(e) if kind == Kind::Json => Err(exec_err(format!("{function}: {e}"))),
        // BigQuery reads a STRING only as far as the path leads.
        Err(e) => Err(unsupported(format!(
            "{function} of a JSON-formatted STRING that is not valid JSON ({e})"
        ))),
    }
}

// ---------------------------------------------------------------------------
// SQL values → JSON (JSON_ARRAY, JSON_OBJECT, JSON_SET, …)

/// The row `row` of `a` as JSON (BigQuery's TO_JSON); `kind` is what its
/// STRING values are.
fn to_json(a: &ArrayRef, row: usize, kind: Kind, function: &str) -> DfResult<Json> {
    if a.is_null(row) {
        return Ok(Json::Null);
    }
    let refuse = |what: &str| {
        Err(unsupported(format!(
            "{function} of a {what} value (its JSON form is not implemented)"
        )))
    };
    Ok(match a.data_type() {
        DataType::Null => Json::Null,
        DataType::Boolean => Json::Bool(a.as_boolean().value(row)),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Json::Number(arrow::util::display::array_value_to_string(a, row)?),
        DataType::Float32 | DataType::Float64 => {
            let f = arrow::compute::cast(&a.slice(row, 1), &DataType::Float64)?;
            let f = f.as_primitive::<arrow::datatypes::Float64Type>().value(0);
            if !f.is_finite() {
                return refuse("non-finite FLOAT64");
            }
            Json::Number(float_to_string(f))
        }
        DataType::Decimal128(..) | DataType::Decimal256(..) => {
            let text = arrow::util::display::array_value_to_string(a, row)?;
            let trimmed = if text.contains('.') {
                text.trim_end_matches('0').trim_end_matches('.')
            } else {
                &text
            };
            Json::Number(json_number(trimmed, false)?)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let s = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(row),
                DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                _ => a.as_string_view().value(row),
            };
            match kind {
                Kind::Str => Json::String(s.to_string()),
                Kind::Json => read(s, Kind::Json, function)?,
                Kind::Any => {
                    return Err(unsupported(format!(
                        "{function} of a value that may be STRING or JSON (the local warehouse stores JSON as STRING; write PARSE_JSON(…) for JSON or CAST(… AS STRING))"
                    )));
                }
            }
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let values = match a.data_type() {
                DataType::List(_) => a.as_list::<i32>().value(row),
                _ => a.as_list::<i64>().value(row),
            };
            let inner = if kind == Kind::Json { Kind::Any } else { kind };
            Json::Array(
                (0..values.len())
                    .map(|i| to_json(&values, i, inner, function))
                    .collect::<DfResult<_>>()?,
            )
        }
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let inner = if kind == Kind::Json { Kind::Any } else { kind };
            let mut members: Vec<(String, Json)> = Vec::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                let name = f.name();
                // DataFusion names a STRUCT's anonymous fields c0, c1, …
                // (BigQuery: ""): such a name cannot be told from a given one.
                if name.len() > 1
                    && name.starts_with('c')
                    && name[1..].chars().all(|c| c.is_ascii_digit())
                {
                    return refuse("STRUCT with anonymous fields");
                }
                let v = to_json(col, row, inner, function)?;
                if !members.iter().any(|(n, _)| n == name) {
                    members.push((name.clone(), v));
                }
            }
            Json::Object(members)
        }
        other => return refuse(&type_name(other)),
    })
}

// ---------------------------------------------------------------------------
// The UDFs

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Int64,
    Bool,
    Float64,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `(text, path, kind)`: JSON_QUERY / JSON_EXTRACT.
    Query { legacy: bool },
    /// `(text, path)`: JSON_VALUE / JSON_EXTRACT_SCALAR.
    Value { legacy: bool },
    /// `(text, path)`: JSON_QUERY_ARRAY / JSON_EXTRACT_ARRAY.
    QueryArray { legacy: bool },
    /// `(text, path)`: JSON_VALUE_ARRAY / JSON_EXTRACT_STRING_ARRAY.
    ValueArray { legacy: bool },
    /// `(json)`: JSON_TYPE.
    Type,
    /// `(json, wide_number_mode)`: INT64, BOOL, FLOAT64/DOUBLE, STRING of JSON.
    Convert { target: Target, safe: bool },
    /// `(json, max_depth, mode)`: JSON_KEYS.
    Keys,
    /// `(text, wide_number_mode)`: PARSE_JSON.
    Parse,
    /// `(kinds, value, …)`: JSON_ARRAY.
    Array,
    /// `(kinds, key, value, …)` or `(kinds, keys, values)`: JSON_OBJECT.
    Object { safe: bool },
    /// `(kinds, json, create_if_missing, path, value, …)`: JSON_SET.
    Set,
    /// `(kinds, json, each_element, path, value, …)`: JSON_ARRAY_INSERT/APPEND.
    Insert { append: bool },
    /// `(json, path, …)`: JSON_REMOVE.
    Remove,
    /// `(json, path, include_arrays, remove_empty)`: JSON_STRIP_NULLS.
    StripNulls,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonUdf {
    name: &'static str,
    /// The SQL function, for messages.
    function: &'static str,
    op: Op,
    signature: Signature,
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

fn list_of_strings() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

impl JsonUdf {
    /// The argument types: which are text, bool, int, and which any value.
    fn coerce(&self, t: &[DataType]) -> DfResult<Vec<DataType>> {
        let f = self.function;
        let text = |i: usize, what: &str| -> DfResult<DataType> {
            match t.get(i) {
                Some(x) if is_text(x) => Ok(DataType::Utf8),
                Some(other) => Err(plan_err(format!(
                    "{f} takes {what}, not {}",
                    type_name(other)
                ))),
                None => Err(plan_err(format!("{f}: missing argument {}", i + 1))),
            }
        };
        let json = |i: usize| -> DfResult<DataType> {
            match t.get(i) {
                Some(x) if is_text(x) => Ok(DataType::Utf8),
                Some(other) => Err(plan_err(format!(
                    "unsupported: {f} of a {} (only JSON values)",
                    type_name(other)
                ))),
                None => Err(plan_err(format!("{f}: missing argument {}", i + 1))),
            }
        };
        let boolean = |i: usize| -> DfResult<DataType> {
            match t.get(i) {
                Some(DataType::Boolean | DataType::Null) => Ok(DataType::Boolean),
                Some(other) => Err(plan_err(format!(
                    "{f} takes a BOOL argument {}, not {}",
                    i + 1,
                    type_name(other)
                ))),
                None => Err(plan_err(format!("{f}: missing argument {}", i + 1))),
            }
        };
        let value = |x: &DataType| match x {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            other => other.clone(),
        };
        Ok(match self.op {
            Op::Query { .. } | Op::Value { .. } | Op::QueryArray { .. } | Op::ValueArray { .. } => {
                vec![
                    text(0, "JSON or a JSON-formatted STRING")?,
                    text(1, "a STRING JSONPath")?,
                    text(2, "a kind")?,
                ]
            }
            Op::Type => vec![json(0)?, text(1, "a kind")?],
            Op::Convert { .. } => vec![json(0)?, text(1, "a STRING mode")?, text(2, "a kind")?],
            Op::Keys => {
                let depth = match t.get(1) {
                    Some(x) if x.is_integer() || *x == DataType::Null => DataType::Int64,
                    Some(other) => {
                        return Err(plan_err(format!(
                            "{f} takes an INT64 max_depth, not {}",
                            type_name(other)
                        )));
                    }
                    None => return Err(plan_err(format!("{f}: missing max_depth"))),
                };
                vec![
                    json(0)?,
                    depth,
                    text(2, "a STRING mode")?,
                    text(3, "a kind")?,
                ]
            }
            Op::Parse => vec![text(0, "a STRING")?, text(1, "a STRING mode")?],
            Op::Array | Op::Object { .. } => {
                let mut out = vec![text(0, "kinds")?];
                out.extend(t[1..].iter().map(value));
                out
            }
            Op::Set | Op::Insert { .. } => {
                let mut out = vec![text(0, "kinds")?, json(1)?, boolean(2)?];
                for (i, x) in t.iter().enumerate().skip(3) {
                    out.push(if (i - 3) % 2 == 0 {
                        text(i, "a STRING JSONPath")?
                    } else {
                        value(x)
                    });
                }
                out
            }
            Op::Remove => {
                let mut out = vec![json(0)?];
                for i in 1..t.len() {
                    out.push(text(i, "a STRING JSONPath")?);
                }
                out
            }
            Op::StripNulls => vec![
                json(0)?,
                text(1, "a STRING JSONPath")?,
                boolean(2)?,
                boolean(3)?,
            ],
        })
    }

    fn result_type(&self) -> DataType {
        match self.op {
            Op::QueryArray { .. } | Op::ValueArray { .. } | Op::Keys => list_of_strings(),
            Op::Convert { target, .. } => match target {
                Target::Int64 => DataType::Int64,
                Target::Bool => DataType::Boolean,
                Target::Float64 => DataType::Float64,
                Target::String => DataType::Utf8,
            },
            _ => DataType::Utf8,
        }
    }
}

/// A row's text argument (`None` for NULL).
fn text_at(a: &ArrayRef, row: usize) -> Option<&str> {
    if a.is_null(row) || a.data_type() == &DataType::Null {
        return None;
    }
    Some(a.as_string::<i32>().value(row))
}

fn bool_at(a: &ArrayRef, row: usize) -> Option<bool> {
    if a.is_null(row) || a.data_type() == &DataType::Null {
        return None;
    }
    Some(a.as_boolean().value(row))
}

/// What one row gives.
enum Out {
    Null,
    Text(String),
    Texts(Vec<Option<String>>),
    Int(i64),
    Bool(bool),
    Float(f64),
}

impl ScalarUDFImpl for JsonUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.coerce(arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.result_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let mut outs = Vec::with_capacity(n);
        for row in 0..n {
            outs.push(self.row(&arrays, row)?);
        }
        let out: ArrayRef = match self.result_type() {
            DataType::Int64 => {
                let mut b = Int64Builder::with_capacity(n);
                for o in outs {
                    match o {
                        Out::Int(i) => b.append_value(i),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                for o in outs {
                    match o {
                        Out::Bool(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Float64 => {
                let mut b = Float64Builder::with_capacity(n);
                for o in outs {
                    match o {
                        Out::Float(v) => b.append_value(v),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            DataType::Utf8 => {
                let mut b = StringBuilder::new();
                for o in outs {
                    match o {
                        Out::Text(s) => b.append_value(s),
                        _ => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let mut b = ListBuilder::new(StringBuilder::new());
                for o in outs {
                    match o {
                        Out::Texts(items) => {
                            for s in items {
                                b.values().append_option(s);
                            }
                            b.append(true);
                        }
                        _ => b.append(false),
                    }
                }
                Arc::new(b.finish())
            }
        };
        if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
            && out.len() == 1
        {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Kinds of the value arguments: `"JSON,STRING,ANY"`.
fn kinds_at(a: &ArrayRef, row: usize) -> Vec<Kind> {
    text_at(a, row)
        .unwrap_or("")
        .split(',')
        .map(Kind::of)
        .collect()
}

/// The value a path of `JSON_SET` creates below a missing place: an object
/// for a name, an array for an index.
fn created(path: &[Step], value: Json) -> DfResult<Json> {
    Ok(match path.split_first() {
        None => value,
        Some((Step::Member(k), rest)) => Json::Object(vec![(k.clone(), created(rest, value)?)]),
        Some((Step::Index(i), rest)) => {
            check_padding("JSON_SET", *i)?;
            let mut items = vec![Json::Null; *i];
            items.push(created(rest, value)?);
            Json::Array(items)
        }
    })
}

/// The most NULLs JSON_SET or JSON_ARRAY_INSERT pads an array with to reach
/// an index: a path like `$.a[999999999]` must fail, not fill the memory.
const MAX_JSON_PADDING: usize = 1_000_000;

fn check_padding(f: &str, index: usize) -> DfResult<()> {
    if index > MAX_JSON_PADDING {
        return Err(exec_err(format!(
            "{f}: the array index {index} is too large (at most {MAX_JSON_PADDING})"
        )));
    }
    Ok(())
}

/// JSON_SET of one path.
fn set(doc: &mut Json, path: &[Step], value: Json, create: bool) -> DfResult<()> {
    let Some((step, rest)) = path.split_first() else {
        *doc = value;
        return Ok(());
    };
    match (doc, step) {
        (Json::Object(members), Step::Member(k)) => {
            match members.iter_mut().find(|(n, _)| n == k) {
                Some((_, v)) => set(v, rest, value, create),
                None => {
                    if create {
                        members.push((k.clone(), created(rest, value)?));
                    }
                    Ok(())
                }
            }
        }
        (Json::Array(items), Step::Index(i)) => {
            if *i < items.len() {
                return set(&mut items[*i], rest, value, create);
            }
            if create {
                check_padding("JSON_SET", *i)?;
                items.resize(*i, Json::Null);
                items.push(created(rest, value)?);
            }
            Ok(())
        }
        (Json::Null, _) => Err(unsupported("JSON_SET through a JSON null")),
        // A name of an array, an index of an object, anything of a scalar:
        // the path does not apply.
        _ => Ok(()),
    }
}

/// JSON_REMOVE of one path.
fn remove(doc: &mut Json, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    match (lookup_mut(doc, parent), last) {
        (Some(Json::Object(members)), Step::Member(k)) => {
            if let Some(at) = members.iter().position(|(n, _)| n == k) {
                members.remove(at);
            }
        }
        (Some(Json::Array(items)), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
        }
        _ => {}
    }
}

/// JSON_STRIP_NULLS of a value: `None` when it is removed (empty, with
/// `remove_empty`).
fn strip(v: Json, arrays: bool, empty: bool) -> Option<Json> {
    match v {
        Json::Object(members) => {
            let kept: Vec<(String, Json)> = members
                .into_iter()
                .filter(|(_, v)| *v != Json::Null)
                .filter_map(|(k, v)| strip(v, arrays, empty).map(|v| (k, v)))
                .collect();
            (!(empty && kept.is_empty())).then_some(Json::Object(kept))
        }
        Json::Array(items) if arrays => {
            let kept: Vec<Json> = items
                .into_iter()
                .filter(|v| *v != Json::Null)
                .filter_map(|v| strip(v, arrays, empty))
                .collect();
            (!(empty && kept.is_empty())).then_some(Json::Array(kept))
        }
        Json::Array(items) => Some(Json::Array(
            items
                .into_iter()
                .map(|v| match v {
                    Json::Object(_) | Json::Array(_) => {
                        strip(v, arrays, empty).unwrap_or(Json::Null)
                    }
                    other => other,
                })
                .collect(),
        )),
        other => Some(other),
    }
}

/// JSON_KEYS: the keys of objects, joined by '.'.
fn keys(
    v: &Json,
    prefix: &str,
    depth: i64,
    max: Option<i64>,
    lax: u8,
    out: &mut Vec<String>,
) -> DfResult<()> {
    if max.is_some_and(|m| depth >= m) {
        return Ok(());
    }
    match v {
        Json::Object(members) => {
            for (k, v) in members {
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(unsupported(format!(
                        "JSON_KEYS of the key {k:?} (its quoting is not implemented)"
                    )));
                }
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(v, &name, depth + 1, max, lax, out)?;
                out.push(name);
            }
        }
        // lax: arrays are looked into (one level, or all with recursive).
        Json::Array(items) if lax > 0 => {
            for item in items {
                match item {
                    Json::Array(_) if lax < 2 => {}
                    other => keys(other, prefix, depth, max, lax, out)?,
                }
            }
        }
        _ => {}
    }
    Ok(())
}

impl JsonUdf {
    fn row(&self, a: &[ArrayRef], row: usize) -> DfResult<Out> {
        let f = self.function;
        match self.op {
            Op::Query { legacy } => {
                let (Some(text), Some(path)) = (text_at(&a[0], row), text_at(&a[1], row)) else {
                    return Ok(Out::Null);
                };
                let kind = Kind::of(text_at(&a[2], row).unwrap_or(""));
                let path = parse_path(path, legacy)?;
                let doc = read(text, kind, f)?;
                let Some(v) = lookup(&doc, &path) else {
                    return Ok(Out::Null);
                };
                match (v, kind) {
                    (Json::Null, Kind::Str) => Ok(Out::Null),
                    (Json::Null, Kind::Any) => Err(unsupported(format!(
                        "{f} of a JSON null in a value that may be STRING (SQL NULL) or JSON (JSON null): the local warehouse stores JSON as STRING; write PARSE_JSON(…) for JSON"
                    ))),
                    (v, Kind::Any) if v.has_duplicates() => Err(unsupported(format!(
                        "{f} of an object with duplicate keys in a value that may be STRING or JSON"
                    ))),
                    (v, _) => Ok(Out::Text(v.text())),
                }
            }
            Op::Value { legacy } => {
                let (Some(text), Some(path)) = (text_at(&a[0], row), text_at(&a[1], row)) else {
                    return Ok(Out::Null);
                };
                let kind = Kind::of(text_at(&a[2], row).unwrap_or(""));
                let path = parse_path(path, legacy)?;
                let doc = read(text, kind, f)?;
                match lookup(&doc, &path) {
                    Some(v) => scalar_text(v, kind, f).map(|s| s.map_or(Out::Null, Out::Text)),
                    None => Ok(Out::Null),
                }
            }
            Op::QueryArray { legacy } | Op::ValueArray { legacy } => {
                let (Some(text), Some(path)) = (text_at(&a[0], row), text_at(&a[1], row)) else {
                    return Ok(Out::Null);
                };
                let kind = Kind::of(text_at(&a[2], row).unwrap_or(""));
                let path = parse_path(path, legacy)?;
                let doc = read(text, kind, f)?;
                let Some(Json::Array(items)) = lookup(&doc, &path) else {
                    return Ok(Out::Null);
                };
                if matches!(self.op, Op::QueryArray { .. }) {
                    if kind == Kind::Any && items.iter().any(Json::has_duplicates) {
                        return Err(unsupported(format!(
                            "{f} of objects with duplicate keys in a value that may be STRING or JSON"
                        )));
                    }
                    return Ok(Out::Texts(items.iter().map(|v| Some(v.text())).collect()));
                }
                if items.iter().any(|v| !v.is_scalar()) {
                    return Ok(Out::Null);
                }
                let mut out = Vec::with_capacity(items.len());
                for v in items {
                    out.push(scalar_text(v, kind, f)?);
                }
                Ok(Out::Texts(out))
            }
            Op::Type => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let doc = read(text, Kind::Json, f)?;
                Ok(Out::Text(doc.type_name().to_string()))
            }
            Op::Convert { target, safe } => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let mode = text_at(&a[1], row).unwrap_or("round");
                let r = convert(text, mode, target);
                match r {
                    Err(DataFusionError::Execution(_)) if safe => Ok(Out::Null),
                    other => other,
                }
            }
            Op::Keys => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let max = if a[1].is_null(row) {
                    None
                } else {
                    Some(
                        a[1].as_primitive::<arrow::datatypes::Int64Type>()
                            .value(row),
                    )
                };
                if max.is_some_and(|m| m <= 0) {
                    return Err(exec_err("JSON_KEYS: max_depth must be positive."));
                }
                let mode = text_at(&a[2], row)
                    .unwrap_or("strict")
                    .split_whitespace()
                    .map(str::to_lowercase)
                    .collect::<Vec<_>>()
                    .join(" ");
                let lax = match mode.as_str() {
                    "strict" => 0,
                    "lax" => 1,
                    "lax recursive" => 2,
                    _ => return Err(exec_err("JSON_KEYS: Invalid JSON mode specified")),
                };
                let doc = read(text, Kind::Json, f)?;
                let mut out = Vec::new();
                keys(&doc, "", 0, max, lax, &mut out)?;
                out.sort();
                out.dedup();
                Ok(Out::Texts(out.into_iter().map(Some).collect()))
            }
            Op::Parse => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let exact = exact_mode(text_at(&a[1], row).unwrap_or("exact"))?;
                let doc = parse(text).map_err(|e| exec_err(format!("PARSE_JSON: {e}")))?;
                let doc = map_numbers(doc.deduplicated(), &|n| json_number(n, exact))?;
                Ok(Out::Text(doc.text()))
            }
            Op::Array => {
                let kinds = kinds_at(&a[0], row);
                let mut items = Vec::with_capacity(a.len() - 1);
                for (i, v) in a[1..].iter().enumerate() {
                    let kind = kinds.get(i).copied().unwrap_or(Kind::Any);
                    items.push(to_json(v, row, kind, f)?);
                }
                Ok(Out::Text(Json::Array(items).text()))
            }
            Op::Object { safe } => match self.object(a, row) {
                Err(DataFusionError::Execution(_)) if safe => Ok(Out::Null),
                other => other,
            },
            Op::Set | Op::Insert { .. } => {
                let kinds = kinds_at(&a[0], row);
                let Some(text) = text_at(&a[1], row) else {
                    return Ok(Out::Null);
                };
                let flag = bool_at(&a[2], row);
                let mut doc = read(text, Kind::Json, f)?;
                let pairs = &a[3..];
                if !pairs.len().is_multiple_of(2) {
                    return Err(exec_err(format!("{f}: a JSONPath without its value")));
                }
                for (p, pair) in pairs.chunks(2).enumerate() {
                    // Positions of the call: the JSON, then path, value, ….
                    let kind = kinds.get(2 * p + 2).copied().unwrap_or(Kind::Any);
                    let Some(path) = text_at(&pair[0], row) else {
                        return Err(unsupported(format!("{f} with a NULL JSONPath")));
                    };
                    let path = parse_path(path, false)?;
                    match self.op {
                        Op::Set => {
                            let value = to_json(&pair[1], row, kind, f)?;
                            let Some(create) = flag else {
                                return Err(unsupported(format!(
                                    "{f} with a NULL create_if_missing"
                                )));
                            };
                            set(&mut doc, &path, value, create)?;
                        }
                        Op::Insert { append } => {
                            let Some(each) = flag else {
                                return Err(unsupported(format!("{f} with a NULL flag")));
                            };
                            let values = if each
                                && matches!(pair[1].data_type(), DataType::List(_))
                                && !pair[1].is_null(row)
                            {
                                match to_json(&pair[1], row, kind, f)? {
                                    Json::Array(items) => items,
                                    other => vec![other],
                                }
                            } else {
                                vec![to_json(&pair[1], row, kind, f)?]
                            };
                            insert(&mut doc, &path, values, append, f)?;
                        }
                        _ => {}
                    }
                }
                Ok(Out::Text(doc.text()))
            }
            Op::Remove => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let mut doc = read(text, Kind::Json, f)?;
                for p in &a[1..] {
                    let Some(path) = text_at(p, row) else {
                        continue;
                    };
                    let path = parse_path(path, false)?;
                    if path.is_empty() {
                        return Err(exec_err("JSON_REMOVE: the JSONPath cannot be '$'"));
                    }
                    remove(&mut doc, &path);
                }
                Ok(Out::Text(doc.text()))
            }
            Op::StripNulls => {
                let Some(text) = text_at(&a[0], row) else {
                    return Ok(Out::Null);
                };
                let path = text_at(&a[1], row).unwrap_or("$");
                let path = parse_path(path, false)?;
                let (Some(arrays), Some(empty)) = (bool_at(&a[2], row), bool_at(&a[3], row)) else {
                    return Err(unsupported("JSON_STRIP_NULLS with a NULL flag"));
                };
                let mut doc = read(text, Kind::Json, f)?;
                if let Some(target) = lookup_mut(&mut doc, &path) {
                    let v = std::mem::replace(target, Json::Null);
                    match strip(v, arrays, empty) {
                        Some(v) => *target = v,
                        None if path.is_empty() => *target = Json::Null,
                        None => {
                            return Err(unsupported(
                                "JSON_STRIP_NULLS with remove_empty of a path whose value becomes empty",
                            ));
                        }
                    }
                }
                Ok(Out::Text(doc.text()))
            }
        }
    }

    fn object(&self, a: &[ArrayRef], row: usize) -> DfResult<Out> {
        let f = self.function;
        let kinds = kinds_at(&a[0], row);
        let args = &a[1..];
        // JSON_OBJECT(keys ARRAY<STRING>, values ARRAY<…>).
        if args.len() == 2 && matches!(args[0].data_type(), DataType::List(_)) {
            if args[0].is_null(row) {
                return Err(exec_err(
                    "Invalid input to JSON_OBJECT: The keys array cannot be NULL",
                ));
            }
            if args[1].is_null(row) || !matches!(args[1].data_type(), DataType::List(_)) {
                return Err(exec_err(
                    "Invalid input to JSON_OBJECT: The values array cannot be NULL",
                ));
            }
            let keys = args[0].as_list::<i32>().value(row);
            let kind = kinds.get(1).copied().unwrap_or(Kind::Any);
            let Json::Array(values) = to_json(&args[1], row, kind, f)? else {
                return Err(exec_err("JSON_OBJECT: the values are not an array"));
            };
            if keys.len() != values.len() {
                return Err(exec_err(
                    "Invalid input to JSON_OBJECT: The number of keys and values must match",
                ));
            }
            let keys: Vec<Option<String>> = match keys.data_type() {
                DataType::Utf8 => keys
                    .as_string::<i32>()
                    .iter()
                    .map(|k| k.map(str::to_string))
                    .collect(),
                DataType::Utf8View => keys
                    .as_string_view()
                    .iter()
                    .map(|k| k.map(str::to_string))
                    .collect(),
                DataType::Null => vec![None; keys.len()],
                other => {
                    return Err(exec_err(format!(
                        "JSON_OBJECT: the keys must be STRING, not {}",
                        type_name(other)
                    )));
                }
            };
            return object_of(keys.into_iter().zip(values));
        }
        if !args.len().is_multiple_of(2) {
            return Err(exec_err(
                "JSON_OBJECT: the arguments must be pairs of a key and a value",
            ));
        }
        let mut pairs = Vec::new();
        for (p, pair) in args.chunks(2).enumerate() {
            if !is_text(pair[0].data_type()) {
                return Err(exec_err(format!(
                    "JSON_OBJECT: a key must be STRING, not {}",
                    type_name(pair[0].data_type())
                )));
            }
            let key = text_at(&pair[0], row).map(str::to_string);
            let kind = kinds.get(2 * p + 1).copied().unwrap_or(Kind::Any);
            pairs.push((key, to_json(&pair[1], row, kind, f)?));
        }
        object_of(pairs.into_iter())
    }
}

fn object_of(pairs: impl Iterator<Item = (Option<String>, Json)>) -> DfResult<Out> {
    let mut members: Vec<(String, Json)> = Vec::new();
    for (k, v) in pairs {
        let Some(k) = k else {
            return Err(exec_err(
                "Invalid input to JSON_OBJECT: A key cannot be NULL",
            ));
        };
        if !members.iter().any(|(n, _)| *n == k) {
            members.push((k, v));
        }
    }
    Ok(Out::Text(Json::Object(members).text()))
}

/// JSON_ARRAY_INSERT / JSON_ARRAY_APPEND of one path.
fn insert(doc: &mut Json, path: &[Step], values: Vec<Json>, append: bool, f: &str) -> DfResult<()> {
    if append {
        match lookup_mut(doc, path) {
            Some(Json::Array(items)) => items.extend(values),
            Some(Json::Null) => return Err(unsupported(format!("{f} into a JSON null"))),
            _ => {}
        }
        return Ok(());
    }
    let Some((Step::Index(at), parent)) = path.split_last() else {
        return Err(unsupported(format!(
            "{f} with a JSONPath that does not end in an array index"
        )));
    };
    match lookup_mut(doc, parent) {
        Some(Json::Array(items)) => {
            if *at > items.len() {
                check_padding(f, *at)?;
                items.resize(*at, Json::Null);
            }
            let tail = items.split_off(*at);
            items.extend(values);
            items.extend(tail);
        }
        Some(Json::Null) => return Err(unsupported(format!("{f} into a JSON null"))),
        _ => {}
    }
    Ok(())
}

/// JSON_VALUE's text of a value: a scalar's text (a string unquoted),
/// `None` for JSON null, objects and arrays.
fn scalar_text(v: &Json, kind: Kind, f: &str) -> DfResult<Option<String>> {
    Ok(match v {
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => {
            // The JSON type holds non-integers as FLOAT64 and writes them
            // as such; the text is kept only where that is the same.
            if kind != Kind::Str && !wide_integer(n) {
                let same = n.parse::<f64>().ok().map(float_to_string);
                if same.as_deref() != Some(n.as_str()) {
                    return Err(unsupported(format!(
                        "{f} of the JSON number {n} (BigQuery's JSON type writes it as a FLOAT64)"
                    )));
                }
            }
            Some(n.clone())
        }
        _ => None,
    })
}

/// INT64/BOOL/FLOAT64/STRING of a JSON value.
fn convert(text: &str, mode: &str, target: Target) -> DfResult<Out> {
    let doc = read(text, Kind::Json, "JSON conversion")?;
    match (target, &doc) {
        (Target::Bool, Json::Bool(b)) => Ok(Out::Bool(*b)),
        (Target::Bool, _) => Err(exec_err("The provided JSON input is not a boolean")),
        (Target::String, Json::String(s)) => Ok(Out::Text(s.clone())),
        (Target::String, _) => Err(exec_err("The provided JSON input is not a string")),
        (Target::Int64, Json::Number(n)) => number_to_int(n).map(Out::Int),
        (Target::Int64, _) => Err(exec_err("The provided JSON input is not an integer")),
        (Target::Float64, Json::Number(n)) => {
            let exact = exact_mode(mode)?;
            number_to_double(n, exact).map(Out::Float)
        }
        (Target::Float64, _) => Err(exec_err("The provided JSON input is not a number")),
    }
}

fn udf(name: &'static str, function: &'static str, op: Op) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonUdf {
        name,
        function,
        op,
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

/// The `bq_json_*` UDFs.
pub fn udfs() -> Vec<ScalarUDF> {
    let mut out = vec![
        udf("bq_json_query", "JSON_QUERY", Op::Query { legacy: false }),
        udf(
            "bq_json_extract",
            "JSON_EXTRACT",
            Op::Query { legacy: true },
        ),
        udf("bq_json_value", "JSON_VALUE", Op::Value { legacy: false }),
        udf(
            "bq_json_extract_scalar",
            "JSON_EXTRACT_SCALAR",
            Op::Value { legacy: true },
        ),
        udf(
            "bq_json_query_array",
            "JSON_QUERY_ARRAY",
            Op::QueryArray { legacy: false },
        ),
        udf(
            "bq_json_extract_array",
            "JSON_EXTRACT_ARRAY",
            Op::QueryArray { legacy: true },
        ),
        udf(
            "bq_json_value_array",
            "JSON_VALUE_ARRAY",
            Op::ValueArray { legacy: false },
        ),
        udf(
            "bq_json_extract_string_array",
            "JSON_EXTRACT_STRING_ARRAY",
            Op::ValueArray { legacy: true },
        ),
        udf("bq_json_type", "JSON_TYPE", Op::Type),
        udf("bq_json_keys", "JSON_KEYS", Op::Keys),
        udf("bq_parse_json", "PARSE_JSON", Op::Parse),
        udf("bq_json_array", "JSON_ARRAY", Op::Array),
        udf("bq_json_object", "JSON_OBJECT", Op::Object { safe: false }),
        udf(
            "bq_safe_json_object",
            "JSON_OBJECT",
            Op::Object { safe: true },
        ),
        udf("bq_json_set", "JSON_SET", Op::Set),
        udf(
            "bq_json_array_insert",
            "JSON_ARRAY_INSERT",
            Op::Insert { append: false },
        ),
        udf(
            "bq_json_array_append",
            "JSON_ARRAY_APPEND",
            Op::Insert { append: true },
        ),
        udf("bq_json_remove", "JSON_REMOVE", Op::Remove),
        udf("bq_json_strip_nulls", "JSON_STRIP_NULLS", Op::StripNulls),
    ];
    for (target, sql, name, safe_name) in [
        (
            Target::Int64,
            "INT64",
            "bq_json_int64",
            "bq_safe_json_int64",
        ),
        (Target::Bool, "BOOL", "bq_json_bool", "bq_safe_json_bool"),
        (
            Target::Float64,
            "FLOAT64",
            "bq_json_float64",
            "bq_safe_json_float64",
        ),
        (
            Target::String,
            "STRING",
            "bq_json_string",
            "bq_safe_json_string",
        ),
    ] {
        out.push(udf(
            name,
            sql,
            Op::Convert {
                target,
                safe: false,
            },
        ));
        out.push(udf(safe_name, sql, Op::Convert { target, safe: true }));
    }
    out
}

/// A JSON value's subscript (`json[0]`, `json['a']`, `json.a`): the member
/// or element as JSON, NULL when there is none.
pub fn subscript(text: &str, key: Result<i64, &str>) -> DfResult<Option<String>> {
    let doc = read(text, Kind::Json, "a JSON subscript")?;
    let v = match (&doc, key) {
        (Json::Array(items), Ok(i)) => usize::try_from(i).ok().and_then(|i| items.get(i)),
        (Json::Object(members), Err(k)) => members.iter().find(|(n, _)| n == k).map(|(_, v)| v),
        _ => None,
    };
    Ok(v.map(Json::text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(doc: &str, path: &str, legacy: bool) -> Option<String> {
        let doc = parse(doc).unwrap();
        let path = parse_path(path, legacy).unwrap();
        lookup(&doc, &path).map(Json::text)
    }

    #[test]
    fn parses_and_writes_compactly() {
        let v =
            parse(r#" {"a" : [1, 2.50, {"b": null}], "c\"d": "\u00e9\n", "a": true} "#).unwrap();
        assert_eq!(
            v.text(),
            r#"{"a":[1,2.50,{"b":null}],"c\"d":"é\n","a":true}"#
        );
        assert_eq!(
            v.deduplicated().text(),
            r#"{"a":[1,2.50,{"b":null}],"c\"d":"é\n"}"#
        );
        assert_eq!(
            parse(r#""\ud83d\ude00""#).unwrap(),
            Json::String("😀".into())
        );
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "tru",
            "\"a",
            "{\"a\" 1}",
            "1 2",
            "\"\\ud800\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_standard_and_legacy() {
        let doc = r#"{"a": [1, {"b.c": [10, 20]}], "x": {"y": "z"}}"#;
        assert_eq!(q(doc, "$.a[1].\"b.c\"", false).as_deref(), Some("[10,20]"));
        assert_eq!(q(doc, "$[a][1]['b.c'][0]", true).as_deref(), Some("10"));
        assert_eq!(q(doc, "$.x.y", true).as_deref(), Some("\"z\""));
        assert_eq!(
            q(doc, "$", false).as_deref(),
            Some(r#"{"a":[1,{"b.c":[10,20]}],"x":{"y":"z"}}"#)
        );
        assert_eq!(q(doc, "$.a[5]", false), None);
        assert_eq!(q(doc, "$.nope.y", false), None);
        assert!(parse_path("a.b", false).is_err());
        assert!(parse_path("$.a[*]", false).is_err());
        assert!(parse_path("$['a']", false).is_err());
        assert!(parse_path("$.", false).is_err());
        assert!(matches!(
            parse_path("lax $.a", false),
            Err(DataFusionError::NotImplemented(_))
        ));
    }

    #[test]
    fn numbers_convert_as_bigquery_converts_them() {
        assert_eq!(number_to_int("10.0").unwrap(), 10);
        assert_eq!(number_to_int("-3e2").unwrap(), -300);
        assert!(number_to_int("10.1").is_err());
        assert!(number_to_int("9223372036854775808").is_err());
        assert_eq!(number_to_double("1.1", true).unwrap(), 1.1);
        assert!(number_to_double("18446744073709551615", true).is_err());
        assert_eq!(
            number_to_double("18446744073709551615", false).unwrap(),
            1.8446744073709552e19
        );
        assert!(exactly("1.0", 1.0) && exactly("-0.5e1", -5.0) && exactly("0", 0.0));
        assert!(!exactly("2.2412421353246235436", 2.241_242_135_324_623_7));
        assert_eq!(
            json_number("2.2412421353246235436", false).unwrap(),
            "2.2412421353246237"
        );
        assert!(json_number("2.2412421353246235436", true).is_err());
        assert_eq!(
            json_number("18446744073709551615", true).unwrap(),
            "18446744073709551615"
        );
    }

    #[test]
    fn mutators() {
        let run = |doc: &str, f: &dyn Fn(&mut Json)| {
            let mut d = parse(doc).unwrap();
            f(&mut d);
            d.text()
        };
        let p = |s: &str| parse_path(s, false).unwrap();
        assert_eq!(
            run(r#"{"a": 10}"#, &|d| {
                set(d, &p("$.b.c[2]"), Json::String("foo".into()), true).unwrap();
                set(d, &p("$[1]"), Json::Number("20".into()), true).unwrap();
                set(d, &p("$.b.c[0]"), Json::Bool(true), true).unwrap();
            }),
            r#"{"a":10,"b":{"c":[true,null,"foo"]}}"#
        );
        assert_eq!(
            run(r#"{"a": 10}"#, &|d| {
                set(d, &p("$.a"), Json::String("foo".into()), false).unwrap();
                set(d, &p("$.b"), Json::Number("20".into()), false).unwrap();
            }),
            r#"{"a":"foo"}"#
        );
        assert_eq!(
            run(r#"[{"a": [10]}, null, {"b": 20, "c": "foo"}]"#, &|d| {
                for path in ["$[1]", "$[0].b", "$[0].a[0]", "$[4].b", "$[1].d", "$[1].c"] {
                    remove(d, &p(path));
                }
            }),
            r#"[{"a":[]},{"b":20}]"#
        );
        assert_eq!(
            run(r#"{"a": [10, null]}"#, &|d| {
                insert(
                    d,
                    &p("$.a[1]"),
                    vec![Json::Array(vec![Json::Number("10".into())])],
                    false,
                    "f",
                )
                .unwrap();
                insert(d, &p("$.a[1][5]"), vec![Json::Bool(true)], false, "f").unwrap();
                insert(
                    d,
                    &p("$.a[3]"),
                    vec![Json::String("foo".into())],
                    false,
                    "f",
                )
                .unwrap();
            }),
            r#"{"a":[10,[10,null,null,null,null,true],null,"foo"]}"#
        );
        assert_eq!(
            run(r#"{"a": [10, null]}"#, &|d| {
                insert(
                    d,
                    &p("$.a"),
                    vec![Json::Bool(true), Json::Bool(false)],
                    true,
                    "f",
                )
                .unwrap();
            }),
            r#"{"a":[10,null,true,false]}"#
        );
        let s = |doc: &str, arrays, empty| {
            strip(parse(doc).unwrap(), arrays, empty).map_or("removed".to_string(), |v| v.text())
        };
        assert_eq!(
            s(r#"{"a": [null], "b":null, "c":{}}"#, false, false),
            r#"{"a":[null],"c":{}}"#
        );
        assert_eq!(s(r#"{"a": [null], "b":{}}"#, true, true), "removed");
        assert_eq!(
            s(r#"{"a": [null], "b":{}}"#, false, true),
            r#"{"a":[null]}"#
        );
        assert_eq!(s(r#"[null, [], {}]"#, true, false), "[[],{}]");
    }

    #[test]
    fn keys_in_order_with_depth_and_modes() {
        let k = |doc: &str, max: Option<i64>, lax: u8| {
            let mut out = Vec::new();
            keys(&parse(doc).unwrap(), "", 0, max, lax, &mut out).unwrap();
            out.sort();
            out
        };
        assert_eq!(k(r#"{"a":{"b":1}}"#, None, 0), ["a", "a.b"]);
        assert_eq!(k(r#"{"a":{"b":1}}"#, Some(1), 0), ["a"]);
        assert!(k(r#"[{"a":{"b":1}}]"#, Some(1), 0).is_empty());
        assert_eq!(k(r#"[{"a":{"b":1}}]"#, Some(1), 1), ["a"]);
        assert!(k(r#"[[{"a":{"b":1}}]]"#, Some(1), 1).is_empty());
        assert_eq!(k(r#"[[{"a":{"b":1}}]]"#, Some(1), 2), ["a"]);
        assert_eq!(k(r#"[{"a":[{"b":1}]}]"#, None, 1), ["a", "a.b"]);
    }

    #[test]
    fn subscripts() {
        assert_eq!(
            subscript(r#"[{"a": "foo"}]"#, Ok(0)).unwrap().as_deref(),
            Some(r#"{"a":"foo"}"#)
        );
        assert_eq!(subscript(r#"[1]"#, Ok(2)).unwrap(), None);
        assert_eq!(subscript(r#"null"#, Ok(0)).unwrap(), None);
        assert_eq!(
            subscript(r#"{"": 1}"#, Err("")).unwrap().as_deref(),
            Some("1")
        );
        assert_eq!(
            subscript(r#"{"a": null}"#, Err("a")).unwrap().as_deref(),
            Some("null")
        );
    }
}
