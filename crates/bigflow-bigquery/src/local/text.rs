//! BigQuery's text functions DataFusion lacks.
//!
//! - `bq_regexp_extract(value, regexp [, position [, occurrence]])`:
//!   `REGEXP_EXTRACT`/`REGEXP_SUBSTR`; `bq_regexp_extract_all(value,
//!   regexp)`: `REGEXP_EXTRACT_ALL`. STRING or BYTES; the match of the one
//!   capturing group, or the whole match; NULL when nothing matches. The
//!   pattern (RE2 syntax; Rust's `regex` is close, with `\d`, `\w`, `\s`
//!   made ASCII as in RE2) is compiled once per batch when it is a
//!   constant, and cached per batch otherwise.
//! - `bq_format(format, arg, …)`: `FORMAT`, the printf-like subset
//!   `%d %i %o %x %X %f %F %e %E %g %G %s %t %T %%` with flags `- + space 0 # '`,
//!   width, precision and `*`; other specifiers are refused with an error.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, ListBuilder, StringBuilder};
use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::limits::{MAX_BATCH_BYTES, MAX_STRING_BYTES};
use super::typed::{to_bq_string, type_name};
use super::udf::{DfResult, exec_err, plan_err, scalar_result};

/// What BigQuery answers but this warehouse does not (reported as
/// unsupported, not as the query's error).
fn not_here(msg: String) -> DataFusionError {
    DataFusionError::NotImplemented(msg)
}

fn row(a: &ArrayRef, i: usize) -> usize {
    if a.len() == 1 { 0 } else { i }
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

// ---------------------------------------------------------------------------
// REGEXP_EXTRACT, REGEXP_EXTRACT_ALL

const TOO_MANY_GROUPS: &str = "Regular expressions passed into extraction functions must not have more than 1 capturing group";

/// RE2's `\d`, `\w`, `\s` (and their negations) are ASCII; Rust's are
/// Unicode: they are spelled out.
fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    // Inside `[…]`: where the class began, to know its literal leading `]`.
    let mut class_depth = 0usize;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let inside = class_depth > 0;
                let text = match (n, inside) {
                    ('d', false) => "[0-9]",
                    ('D', false) => "[^0-9]",
                    ('w', false) => "[0-9A-Za-z_]",
                    ('W', false) => "[^0-9A-Za-z_]",
                    ('s', false) => r"[\t\n\f\r ]",
                    ('S', false) => r"[^\t\n\f\r ]",
                    ('d', true) => "0-9",
                    ('w', true) => "0-9A-Za-z_",
                    ('s', true) => r"\t\n\f\r ",
                    _ => {
                        out.push('\\');
                        out.push(n);
                        continue;
                    }
                };
                out.push_str(text);
            }
            '[' => {
                if class_depth > 0 && chars.peek() == Some(&':') {
                    // `[:alpha:]` inside a class.
                    out.push('[');
                    for c in chars.by_ref() {
                        out.push(c);
                        if c == ']' {
                            break;
                        }
                    }
                    continue;
                }
                class_depth += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                class_start = true;
            }
            ']' if class_depth > 0 && !at_start => {
                class_depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// A match: (end of the whole match, whether it is empty, the extracted
/// part's range if it took part).
type Found = (usize, bool, Option<(usize, usize)>);

enum Compiled {
    Text(regex::Regex),
    Bytes(regex::bytes::Regex),
}

impl Compiled {
    fn new(pattern: &[u8], bytes: bool) -> DfResult<Compiled> {
        let bad = |e: String| exec_err(format!("Cannot parse regular expression: {e}"));
        if bytes {
            // Latin-1, as RE2 reads BYTES patterns: a byte is a character.
            let mut p = String::with_capacity(pattern.len());
            for &b in pattern {
                if b.is_ascii() {
                    p.push(char::from(b));
                } else {
                    p.push_str(&format!("\\x{b:02X}"));
                }
            }
            regex::bytes::RegexBuilder::new(&ascii_classes(&p))
                .unicode(false)
                .build()
                .map(Compiled::Bytes)
                .map_err(|e| bad(e.to_string()))
        } else {
            let p = std::str::from_utf8(pattern)
                .map_err(|_| bad("the pattern is not valid UTF-8".into()))?;
            regex::Regex::new(&ascii_classes(p))
                .map(Compiled::Text)
                .map_err(|e| bad(e.to_string()))
        }
    }

    fn groups(&self) -> usize {
        match self {
            Compiled::Text(r) => r.captures_len() - 1,
            Compiled::Bytes(r) => r.captures_len() - 1,
        }
    }

    /// The first match at or after `start` of `hay`: (end of the whole
    /// match, whether it is empty, the extracted part if it took part).
    fn find_at(&self, hay: &[u8], start: usize) -> Option<Found> {
        let pick = |whole: (usize, usize), group: Option<Option<(usize, usize)>>| {
            let part = match group {
                None => Some(whole),
                Some(g) => g,
            };
            (whole.1, whole.0 == whole.1, part)
        };
        match self {
            Compiled::Text(r) => {
                // `hay` comes from a valid STRING.
                let s = std::str::from_utf8(hay).ok()?;
                let c = r.captures_at(s, start)?;
                let whole = c.get(0).map(|m| (m.start(), m.end()))?;
                let group = (c.len() > 1).then(|| c.get(1).map(|m| (m.start(), m.end())));
                Some(pick(whole, group))
            }
            Compiled::Bytes(r) => {
                let c = r.captures_at(hay, start)?;
                let whole = c.get(0).map(|m| (m.start(), m.end()))?;
                let group = (c.len() > 1).then(|| c.get(1).map(|m| (m.start(), m.end())));
                Some(pick(whole, group))
            }
        }
    }

    /// ZetaSQL's extraction: matches one after the other (an empty match
    /// moves on one character), the group's part or the whole match;
    /// `None` for a group that took no part.
    fn extract(
        &self,
        hay: &[u8],
        text: bool,
        mut f: impl FnMut(Option<(usize, usize)>) -> bool,
    ) -> DfResult<()> {
        if self.groups() > 1 {
            return Err(exec_err(TOO_MANY_GROUPS));
        }
        let mut pos = 0usize;
        loop {
            let Some((end, empty, part)) = self.find_at(hay, pos) else {
                return Ok(());
            };
            pos = end;
            if empty && pos < hay.len() {
                pos += if text { utf8_len(hay[pos]) } else { 1 };
            }
            if !f(part) || pos >= hay.len() {
                return Ok(());
            }
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Compiled patterns of one batch.
struct Patterns {
    bytes: bool,
    cache: HashMap<Vec<u8>, Arc<Compiled>>,
}

impl Patterns {
    fn get(&mut self, pattern: &[u8]) -> DfResult<Arc<Compiled>> {
        if let Some(c) = self.cache.get(pattern) {
            return Ok(c.clone());
        }
        let c = Arc::new(Compiled::new(pattern, self.bytes)?);
        if self.cache.len() >= 8 {
            self.cache.clear();
        }
        self.cache.insert(pattern.to_vec(), c.clone());
        Ok(c)
    }
}

fn bytes_at(a: &ArrayRef, i: usize) -> Option<&[u8]> {
    if a.is_null(i) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().value(i),
        _ => a.as_string::<i32>().value(i).as_bytes(),
    })
}

/// `bq_regexp_extract` (`all`: `bq_regexp_extract_all`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RegexpExtract {
    signature: Signature,
    all: bool,
}

impl RegexpExtract {
    fn function(&self) -> &'static str {
        if self.all {
            "REGEXP_EXTRACT_ALL"
        } else {
            "REGEXP_EXTRACT"
        }
    }
}

impl ScalarUDFImpl for RegexpExtract {
    fn name(&self) -> &str {
        if self.all {
            "bq_regexp_extract_all"
        } else {
            "bq_regexp_extract"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let f = self.function();
        let max = if self.all { 2 } else { 4 };
        if arg_types.len() < 2 || arg_types.len() > max {
            return Err(plan_err(if self.all {
                format!("{f} takes (value, regexp)")
            } else {
                format!("{f} takes (value, regexp [, position [, occurrence]])")
            }));
        }
        let kind = |t: &DataType| match t {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Some(false),
            t if is_binary(t) => Some(true),
            DataType::Null => None,
            _ => Some(false),
        };
        for t in &arg_types[..2] {
            if !matches!(
                t,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
            ) && !is_binary(t)
            {
                return Err(plan_err(format!(
                    "{f} takes STRING or BYTES values, got {}",
                    type_name(t)
                )));
            }
        }
        let bytes = match (kind(&arg_types[0]), kind(&arg_types[1])) {
            (Some(a), Some(b)) if a != b => {
                return Err(plan_err(format!(
                    "{f} takes a value and a regexp of one type (both STRING or both BYTES), got {} and {}",
                    type_name(&arg_types[0]),
                    type_name(&arg_types[1])
                )));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => false,
        };
        let text = if bytes {
            DataType::Binary
        } else {
            DataType::Utf8
        };
        let mut out = vec![text.clone(), text];
        for t in &arg_types[2..] {
            if !(t.is_integer() || *t == DataType::Null) {
                return Err(plan_err(format!(
                    "{f}: the position and the occurrence are INT64, got {}",
                    type_name(t)
                )));
            }
            out.push(DataType::Int64);
        }
        Ok(out)
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        let t = if arg_types.first().is_some_and(is_binary) {
            DataType::Binary
        } else {
            DataType::Utf8
        };
        Ok(if self.all {
            DataType::List(Arc::new(Field::new("item", t, true)))
        } else {
            t
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let f = self.function();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let bytes = is_binary(arrays[0].data_type());
        let mut patterns = Patterns {
            bytes,
            cache: HashMap::new(),
        };
        let int_at = |k: usize, i: usize| -> Option<Option<i64>> {
            arrays.get(k).map(|a| {
                let r = row(a, i);
                (!a.is_null(r)).then(|| a.as_primitive::<arrow::datatypes::Int64Type>().value(r))
            })
        };
        let mut total = 0u64;
        let mut strings = StringBuilder::new();
        let mut binaries = BinaryBuilder::new();
        let mut list_strings = ListBuilder::new(StringBuilder::new());
        let mut list_binaries = ListBuilder::new(BinaryBuilder::new());
        for i in 0..n {
            let value = bytes_at(&arrays[0], row(&arrays[0], i));
            let pattern = bytes_at(&arrays[1], row(&arrays[1], i));
            let (position, occurrence) = (int_at(2, i), int_at(3, i));
            let null = value.is_none()
                || pattern.is_none()
                || matches!(position, Some(None))
                || matches!(occurrence, Some(None));
            let mut result: Option<Vec<(usize, usize)>> = None;
            let mut hay: &[u8] = &[];
            if !null {
                let (value, pattern) = (value.unwrap_or_default(), pattern.unwrap_or_default());
                let re = patterns.get(pattern)?;
                let position = position.flatten().unwrap_or(1);
                let occurrence = occurrence.flatten().unwrap_or(1);
                if position < 1 {
                    return Err(exec_err(format!(
                        "{f}: the position must be positive, got {position}"
                    )));
                }
                if occurrence < 1 {
                    return Err(exec_err(format!(
                        "{f}: the occurrence must be positive, got {occurrence}"
                    )));
                }
                if re.groups() > 1 {
                    return Err(exec_err(TOO_MANY_GROUPS));
                }
                // The search begins at `position` (characters of a STRING,
                // bytes of BYTES), anchors (`^`) included.
                let skip = usize::try_from(position - 1).unwrap_or(usize::MAX);
                let offset = if bytes {
                    (skip <= value.len()).then_some(skip)
                } else {
                    let s = std::str::from_utf8(value).unwrap_or_default();
                    if skip == 0 {
                        Some(0)
                    } else {
                        s.char_indices()
                            .map(|(k, _)| k)
                            .chain(std::iter::once(s.len()))
                            .nth(skip)
                    }
                };
                let beyond = usize::try_from(position).unwrap_or(usize::MAX) > value.len()
                    && !(value.is_empty() && position == 1);
                if let Some(offset) = offset.filter(|_| !beyond) {
                    hay = &value[offset..];
                    let mut found = Vec::new();
                    let mut seen = 0i64;
                    let mut missing_group = false;
                    re.extract(hay, !bytes, |part| {
                        seen += 1;
                        if self.all {
                            found.push(part.unwrap_or((0, 0)));
                            true
                        } else if seen == occurrence {
                            match part {
                                Some(p) => found.push(p),
                                None => missing_group = true,
                            }
                            false
                        } else {
                            true
                        }
                    })?;
                    if self.all || !found.is_empty() {
                        result = Some(found);
                    }
                } else if self.all {
                    result = Some(Vec::new());
                }
            }
            if let Some(parts) = &result {
                total += parts.iter().map(|(a, b)| (b - a) as u64).sum::<u64>();
                if total > MAX_BATCH_BYTES {
                    return Err(exec_err(format!(
                        "{f}: the results of a batch exceed {MAX_BATCH_BYTES} bytes"
                    )));
                }
            }
            let text_of =
                |(a, b): (usize, usize)| std::str::from_utf8(&hay[a..b]).unwrap_or_default();
            match (self.all, bytes, result) {
                (false, false, Some(p)) => strings.append_value(text_of(p[0])),
                (false, false, None) => strings.append_null(),
                (false, true, Some(p)) => binaries.append_value(&hay[p[0].0..p[0].1]),
                (false, true, None) => binaries.append_null(),
                (true, false, Some(ps)) => {
                    for p in ps {
                        list_strings.values().append_value(text_of(p));
                    }
                    list_strings.append(true);
                }
                (true, false, None) => list_strings.append(false),
                (true, true, Some(ps)) => {
                    for (a, b) in ps {
                        list_binaries.values().append_value(&hay[a..b]);
                    }
                    list_binaries.append(true);
                }
                (true, true, None) => list_binaries.append(false),
            }
        }
        let out: ArrayRef = match (self.all, bytes) {
            (false, false) => Arc::new(strings.finish()),
            (false, true) => Arc::new(binaries.finish()),
            (true, false) => Arc::new(list_strings.finish()),
            (true, true) => Arc::new(list_binaries.finish()),
        };
        // A NULL value or regexp makes an empty array in BigQuery? No:
        // REGEXP_EXTRACT_ALL(NULL, …) is NULL, as built above.
        scalar_result(&args.args, out)
    }
}

// ---------------------------------------------------------------------------
// FORMAT

/// The largest width or precision `FORMAT` takes.
const MAX_WIDTH: usize = 1 << 20;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Flags {
    left: bool,
    plus: bool,
    space: bool,
    zero: bool,
    alt: bool,
    group: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Count {
    None,
    Fixed(usize),
    /// `*`: the next argument.
    Star,
}

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(String),
    Spec {
        flags: Flags,
        width: Count,
        precision: Count,
        conv: char,
    },
}

fn parse_format(fmt: &str) -> DfResult<Vec<Piece>> {
    let bad = |m: String| exec_err(format!("FORMAT: {m} in format string \"{fmt}\""));
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            lit.push('%');
            continue;
        }
        let mut flags = Flags::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => flags.left = true,
                '+' => flags.plus = true,
                ' ' => flags.space = true,
                '0' => flags.zero = true,
                '#' => flags.alt = true,
                '\'' => flags.group = true,
                _ => break,
            }
            chars.next();
        }
        let count = |chars: &mut std::iter::Peekable<std::str::Chars>| -> DfResult<Count> {
            if chars.peek() == Some(&'*') {
                chars.next();
                return Ok(Count::Star);
            }
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                chars.next();
                let v = n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize);
                n = Some(v);
            }
            match n {
                Some(v) if v > MAX_WIDTH => Err(bad(format!(
                    "a width or precision of {v} is too large (at most {MAX_WIDTH})"
                ))),
                Some(v) => Ok(Count::Fixed(v)),
                None => Ok(Count::None),
            }
        };
        let width = count(&mut chars)?;
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            match count(&mut chars)? {
                Count::None => Count::Fixed(0),
                c => c,
            }
        } else {
            Count::None
        };
        let conv = chars.next().ok_or_else(|| bad("a '%' at the end".into()))?;
        match conv {
            'd' | 'i' | 'o' | 'x' | 'X' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 's' | 't' | 'T' => {}
            'p' | 'P' => {
                return Err(not_here(format!(
                    "FORMAT: the specifier %{conv} (JSON and PROTO values)"
                )));
            }
            other => return Err(bad(format!("an invalid specifier %{other}"))),
        }
        if flags.group && !matches!(conv, 'd' | 'i' | 'o' | 'x' | 'X') {
            return Err(not_here(format!(
                "FORMAT: the ' flag with %{conv} (only with %d, %i, %o, %x and %X)"
            )));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        pieces.push(Piece::Spec {
            flags,
            width,
            precision,
            conv,
        });
    }
    if !lit.is_empty() {
        pieces.push(Piece::Literal(lit));
    }
    Ok(pieces)
}

/// One argument's value, as FORMAT sees it.
#[derive(Clone, Debug, PartialEq)]
enum Arg {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
    /// Another type: its CAST AS STRING text and its type's name.
    Other(String, String),
}

/// Pads `body` (with its sign/prefix `sign`) to `width`.
fn pad(sign: &str, body: &str, width: usize, flags: Flags, zero_ok: bool) -> String {
    let len = sign.chars().count() + body.chars().count();
    if len >= width {
        return format!("{sign}{body}");
    }
    let fill = width - len;
    if flags.left {
        format!("{sign}{body}{}", " ".repeat(fill))
    } else if flags.zero && zero_ok {
        format!("{sign}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{body}", " ".repeat(fill))
    }
}

fn sign_of(negative: bool, flags: Flags) -> &'static str {
    if negative {
        "-"
    } else if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    }
}

/// C's `%e` exponent form: `1.500000e+02`.
fn c_exp(v: f64, precision: usize, upper: bool, alt: bool) -> String {
    let s = format!("{v:.precision$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut m = mantissa.to_string();
    if alt && precision == 0 {
        m.push('.');
    }
    let e = if upper { 'E' } else { 'e' };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{m}{e}{sign}{:02}", exp.unsigned_abs())
}

fn strip_zeros(s: &str) -> String {
    // Only the fraction of a mantissa loses trailing zeros.
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(k) => (&s[..k], &s[k..]),
        None => (s, ""),
    };
    let m = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    format!("{m}{exp}")
}

/// C's `%g`.
fn c_general(v: f64, precision: usize, upper: bool, alt: bool) -> String {
    let p = precision.max(1);
    let e = c_exp(v, p - 1, upper, alt);
    let exp: i64 = e
        .rsplit_once(['e', 'E'])
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    let s = if exp < -4 || exp >= p as i64 {
        e
    } else {
        let decimals = usize::try_from(p as i64 - 1 - exp).unwrap_or(0);
        let mut f = format!("{v:.decimals$}");
        if alt && decimals == 0 {
            f.push('.');
        }
        f
    };
    if alt { s } else { strip_zeros(&s) }
}

/// C's `%d` (ZetaSQL formats `%d`/`%i` without `'` with printf).
fn c_integer(v: i64, flags: Flags, width: usize, precision: Option<usize>) -> String {
    let magnitude = v.unsigned_abs();
    let mut digits = magnitude.to_string();
    if let Some(p) = precision {
        if p == 0 && magnitude == 0 {
            digits.clear();
        } else if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    pad(
        sign_of(v < 0, flags),
        &digits,
        width,
        flags,
        precision.is_none(),
    )
}

/// ZetaSQL's own integer conversion, for `%o`, `%x`, `%X` and the `'`
/// flag: a sign for negative values, `#` always prefixes, groups of 3 (`,`)
/// for decimals and of 4 for the others (`:` in hexadecimal), zero padding
/// even with a precision.
fn grouped_integer(
    v: i64,
    conv: char,
    flags: Flags,
    width: usize,
    precision: Option<usize>,
) -> String {
    let magnitude = v.unsigned_abs();
    let (digits, sep, group, mut prefix) = match conv {
        'o' => (format!("{magnitude:o}"), ',', 4, "0"),
        'x' => (format!("{magnitude:x}"), ':', 4, "0x"),
        'X' => (format!("{magnitude:X}"), ':', 4, "0X"),
        _ => (magnitude.to_string(), ',', 3, ""),
    };
    let mut digits = digits;
    if let Some(p) = precision.filter(|p| *p > digits.len()) {
        if conv == 'o' {
            prefix = "";
        }
        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
    }
    if flags.group {
        let mut out = String::with_capacity(digits.len() * 2);
        let lead = (digits.len() - 1) % group + 1;
        for (k, c) in digits.chars().enumerate() {
            if k >= lead && (k - lead) % group == 0 {
                out.push(sep);
            }
            out.push(c);
        }
        digits = out;
    }
    let sign = sign_of(v < 0, flags);
    let prefix = if flags.alt { prefix } else { "" };
    let len = sign.len() + prefix.len() + digits.len();
    let fill = width.saturating_sub(len);
    if flags.left {
        format!("{sign}{prefix}{digits}{}", " ".repeat(fill))
    } else if flags.zero {
        format!("{sign}{prefix}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{sign}{prefix}{digits}", " ".repeat(fill))
    }
}

/// `%T` of a STRING: ZetaSQL's `ToStringLiteral` — double quotes, or single
/// ones when the text has `"` and no `'`; `\n`, `\r`, `\t`, `\\`, the
/// quote, and other ASCII control characters as `\xNN` (a hex digit right
/// after one too); other characters as they are.
fn string_literal(s: &str) -> String {
    let quote = if s.contains('"') && !s.contains('\'') {
        '\''
    } else {
        '"'
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    let mut last_hex = false;
    for c in s.chars() {
        let mut hex = false;
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '\'' | '"' | '`' => {
                if c == quote {
                    out.push('\\');
                }
                out.push(c);
            }
            c if c.is_ascii()
                && (!(c.is_ascii_graphic() || c == ' ') || (last_hex && c.is_ascii_hexdigit())) =>
            {
                out.push_str(&format!("\\x{:02x}", c as u32));
                hex = true;
            }
            c => out.push(c),
        }
        last_hex = hex;
    }
    out.push(quote);
    out
}

/// Types `%t` writes as their CAST AS STRING text and `%T` as `TYPE "text"`.
const LITERAL_TYPES: [&str; 4] = ["DATE", "DATETIME", "TIMESTAMP", "NUMERIC"];

/// One formatted specifier; `None`: the result is NULL.
fn format_one(
    conv: char,
    flags: Flags,
    width: usize,
    precision: Option<usize>,
    arg: &Arg,
) -> DfResult<Option<String>> {
    let wrong = |what: &str| {
        let got = match arg {
            Arg::Null => "NULL".to_string(),
            Arg::Int(_) => "INT64".into(),
            Arg::Float(_) => "FLOAT64".into(),
            Arg::Bool(_) => "BOOL".into(),
            Arg::Str(_) => "STRING".into(),
            Arg::Other(_, t) => t.clone(),
        };
        // BigQuery formats NUMERIC with %f, %e and %g; not done here.
        if what == "FLOAT64" && got == "NUMERIC" {
            return not_here(format!("FORMAT: %{conv} of a NUMERIC value"));
        }
        exec_err(format!("FORMAT: %{conv} takes {what}, got {got}"))
    };
    if *arg == Arg::Null {
        return Ok(match conv {
            't' | 'T' => Some(pad("", "NULL", width, flags, false)),
            _ => None,
        });
    }
    let out = match conv {
        'd' | 'i' | 'o' | 'x' | 'X' => {
            let Arg::Int(v) = *arg else {
                return Err(wrong("INT64"));
            };
            if matches!(conv, 'd' | 'i') && !flags.group {
                c_integer(v, flags, width, precision)
            } else {
                grouped_integer(v, conv, flags, width, precision)
            }
        }
        'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
            let Arg::Float(v) = *arg else {
                return Err(wrong("FLOAT64"));
            };
            let upper = conv.is_ascii_uppercase();
            let sign = sign_of(v.is_sign_negative() && !v.is_nan(), flags);
            let a = v.abs();
            if !a.is_finite() {
                let body = match (a.is_nan(), upper) {
                    (true, false) => "nan",
                    (true, true) => "NAN",
                    (false, false) => "inf",
                    (false, true) => "INF",
                };
                let sign = if a.is_nan() {
                    sign_of(false, flags)
                } else {
                    sign
                };
                pad(sign, body, width, flags, false)
            } else {
                let p = precision.unwrap_or(6);
                // ZetaSQL's limits: %f/%e at most 1074 digits, %g capped.
                if p > 1074 && !matches!(conv, 'g' | 'G') {
                    return Err(exec_err(format!(
                        "FORMAT: the precision {p} of %{conv} is too big (at most 1074)"
                    )));
                }
                let p = p.min(1074);
                let body = match conv {
                    'f' | 'F' => {
                        let mut s = format!("{a:.p$}");
                        if flags.alt && p == 0 {
                            s.push('.');
                        }
                        s
                    }
                    'e' | 'E' => c_exp(a, p, upper, flags.alt),
                    _ => c_general(a, p, upper, flags.alt),
                };
                pad(sign, &body, width, flags, true)
            }
        }
        's' => {
            // STRING only (ZetaSQL's type check); text after a NUL is cut.
            let Arg::Str(s) = arg else {
                return Err(wrong("STRING"));
            };
            let text = s.split('\0').next().unwrap_or_default().to_string();
            let text: String = match precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            pad("", &text, width, flags, false)
        }
        't' | 'T' => {
            let text = match (arg, conv) {
                (Arg::Str(s), 't') => s.clone(),
                (Arg::Str(s), _) => string_literal(s),
                (Arg::Int(v), _) => v.to_string(),
                (Arg::Bool(b), _) => b.to_string(),
                // Their CAST AS STRING text (ZetaSQL's DebugString), and as
                // a literal with the type's name.
                (Arg::Other(s, t), 't') if LITERAL_TYPES.contains(&t.as_str()) => s.clone(),
                (Arg::Other(s, t), _) if LITERAL_TYPES.contains(&t.as_str()) => {
                    format!("{t} \"{s}\"")
                }
                _ => {
                    return Err(not_here(format!(
                        "FORMAT: %{conv} of this value (only of STRING, INT64, BOOL, DATE, DATETIME, TIMESTAMP, NUMERIC)"
                    )));
                }
            };
            let text: String = match precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            pad("", &text, width, flags, false)
        }
        other => {
            return Err(exec_err(format!("FORMAT: an invalid specifier %{other}")));
        }
    };
    Ok(Some(out))
}

/// `FORMAT(pattern, args…)` of one row; `None`: NULL.
fn format_row(pieces: &[Piece], args: &[Arg]) -> DfResult<Option<String>> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut take = |what: &str| -> DfResult<&Arg> {
        let a = args.get(next).ok_or_else(|| {
            exec_err(format!(
                "FORMAT: too few arguments for the format string (no argument for {what})"
            ))
        })?;
        next += 1;
        Ok(a)
    };
    let mut null = false;
    for p in pieces {
        match p {
            Piece::Literal(s) => out.push_str(s),
            Piece::Spec {
                flags,
                width,
                precision,
                conv,
            } => {
                let mut flags = *flags;
                let mut star = |c: &Count, what: &str| -> DfResult<Option<i64>> {
                    Ok(match c {
                        Count::None => None,
                        Count::Fixed(v) => Some(*v as i64),
                        Count::Star => match take(what)? {
                            Arg::Int(v) => Some(*v),
                            Arg::Null => {
                                null = true;
                                Some(0)
                            }
                            _ => {
                                return Err(exec_err(format!(
                                    "FORMAT: the {what} of * must be INT64"
                                )));
                            }
                        },
                    })
                };
                let w = star(width, "width")?;
                let pr = star(precision, "precision")?;
                let width = match w {
                    Some(w) if w < 0 => {
                        flags.left = true;
                        w.unsigned_abs()
                    }
                    Some(w) => w as u64,
                    None => 0,
                };
                // A negative `*` precision is as if none was given.
                let precision = pr.and_then(|p| u64::try_from(p).ok());
                if width > MAX_WIDTH as u64 || precision.is_some_and(|p| p > MAX_WIDTH as u64) {
                    return Err(exec_err(format!(
                        "FORMAT: a width or precision over {MAX_WIDTH} is too large"
                    )));
                }
                let arg = take(&format!("%{conv}"))?;
                match format_one(
                    *conv,
                    flags,
                    width as usize,
                    precision.map(|p| p as usize),
                    arg,
                )? {
                    Some(s) => out.push_str(&s),
                    None => null = true,
                }
                if out.len() as u64 > MAX_STRING_BYTES {
                    return Err(exec_err(format!(
                        "FORMAT: the result exceeds {MAX_STRING_BYTES} bytes"
                    )));
                }
            }
        }
    }
    if next < args.len() {
        return Err(exec_err(format!(
            "FORMAT: too many arguments for the format string ({} given, {next} used)",
            args.len()
        )));
    }
    Ok((!null).then_some(out))
}

/// `bq_format(format, arg, …)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "bq_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        let Some(first) = arg_types.first() else {
            return Err(plan_err("FORMAT takes a format string"));
        };
        if !matches!(
            first,
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
        ) {
            return Err(plan_err(format!(
                "FORMAT takes a STRING format, got {}",
                type_name(first)
            )));
        }
        let mut out = vec![DataType::Utf8];
        for t in &arg_types[1..] {
            out.push(match t {
                // A NULL of no type (Arrow's NullArray has no null bitmap).
                DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
                t if t.is_integer() => DataType::Int64,
                DataType::Float16 | DataType::Float32 => DataType::Float64,
                DataType::Timestamp(_, tz) => {
                    DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                }
                other => other.clone(),
            });
        }
        Ok(out)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let n = args.number_rows;
        let fmt = arrays[0].as_string::<i32>();
        // Other values as CAST(… AS STRING) writes them.
        let texts: Vec<Option<ArrayRef>> = arrays[1..]
            .iter()
            .map(|a| match a.data_type() {
                DataType::Utf8
                | DataType::Int64
                | DataType::Float64
                | DataType::Boolean
                | DataType::Null => Ok(None),
                DataType::List(_) | DataType::Struct(_) | DataType::LargeList(_) => Err(not_here(
                    format!("FORMAT of a {} value", type_name(a.data_type())),
                )),
                _ => to_bq_string(a).map(Some),
            })
            .collect::<DfResult<_>>()?;
        let mut parsed: Option<(String, Vec<Piece>)> = None;
        let mut out = StringBuilder::new();
        let mut total = 0u64;
        for i in 0..n {
            let fi = row(&arrays[0], i);
            if fmt.is_null(fi) {
                out.append_null();
                continue;
            }
            let f = fmt.value(fi);
            if parsed.as_ref().is_none_or(|(s, _)| s != f) {
                parsed = Some((f.to_string(), parse_format(f)?));
            }
            let pieces = parsed.as_ref().map(|(_, p)| p.as_slice()).unwrap_or(&[]);
            let mut values = Vec::with_capacity(arrays.len() - 1);
            for (k, a) in arrays[1..].iter().enumerate() {
                let r = row(a, i);
                values.push(if a.is_null(r) {
                    Arg::Null
                } else {
                    match a.data_type() {
                        DataType::Utf8 => Arg::Str(a.as_string::<i32>().value(r).to_string()),
                        DataType::Int64 => {
                            Arg::Int(a.as_primitive::<arrow::datatypes::Int64Type>().value(r))
                        }
                        DataType::Float64 => {
                            Arg::Float(a.as_primitive::<arrow::datatypes::Float64Type>().value(r))
                        }
                        DataType::Boolean => Arg::Bool(a.as_boolean().value(r)),
                        t => {
                            let mut text = texts[k]
                                .as_ref()
                                .map(|x| x.as_string::<i32>().value(row(x, i)).to_string())
                                .unwrap_or_default();
                            // NUMERIC's text has no trailing zeros (`1.5`).
                            if matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
                                && text.contains('.')
                            {
                                text = text.trim_end_matches('0').trim_end_matches('.').to_string();
                            }
                            Arg::Other(text, type_name(t))
                        }
                    }
                });
            }
            match format_row(pieces, &values)? {
                Some(s) => {
                    total += s.len() as u64;
                    if total > MAX_BATCH_BYTES {
                        return Err(exec_err(format!(
                            "FORMAT: the results of a batch exceed {MAX_BATCH_BYTES} bytes"
                        )));
                    }
                    out.append_value(s);
                }
                None => out.append_null(),
            }
        }
        scalar_result(&args.args, Arc::new(out.finish()))
    }
}

/// The UDFs of this module.
pub fn udfs() -> Vec<ScalarUDF> {
    let user = || Signature::user_defined(Volatility::Immutable);
    vec![
        ScalarUDF::new_from_impl(RegexpExtract {
            signature: user(),
            all: false,
        }),
        ScalarUDF::new_from_impl(RegexpExtract {
            signature: user(),
            all: true,
        }),
        ScalarUDF::new_from_impl(Format { signature: user() }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str, args: &[Arg]) -> DfResult<Option<String>> {
        format_row(&parse_format(f)?, args)
    }

    fn ok(f: &str, args: &[Arg]) -> String {
        fmt(f, args).unwrap().unwrap()
    }

    fn extract_all(pattern: &str, value: &str) -> DfResult<Vec<String>> {
        let re = Compiled::new(pattern.as_bytes(), false)?;
        let mut out = Vec::new();
        re.extract(value.as_bytes(), true, |p| {
            let (a, b) = p.unwrap_or((0, 0));
            out.push(value[a..b].to_string());
            true
        })?;
        Ok(out)
    }

    #[test]
    fn extraction_takes_the_group_or_the_match() {
        assert_eq!(
            extract_all("[a|d]b?", "abc dbc ac").unwrap(),
            ["ab", "db", "a"]
        );
        assert_eq!(
            extract_all(r"[?&](utm_\w+)=", "x?utm_source=a&utm_medium=b").unwrap(),
            ["utm_source", "utm_medium"]
        );
        // An empty match moves on one character; none after the last one.
        assert_eq!(extract_all("a*", "ab").unwrap(), ["a", ""]);
        assert_eq!(extract_all("x*", "").unwrap(), [""]);
        assert_eq!(extract_all("é?", "éa").unwrap(), ["é", ""]);
        let e = extract_all("(a)(b)", "ab").unwrap_err().to_string();
        assert!(
            e.contains("must not have more than 1 capturing group"),
            "{e}"
        );
        let e = Compiled::new(b"(", false).err().unwrap().to_string();
        assert!(e.contains("Cannot parse regular expression"), "{e}");
    }

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        assert_eq!(extract_all(r"\d+", "٣4").unwrap(), ["4"]);
        assert_eq!(ascii_classes(r"[\d.]+"), "[0-9.]+");
        assert_eq!(ascii_classes(r"[]\w]"), "[]0-9A-Za-z_]");
        assert_eq!(ascii_classes(r"\\d"), r"\\d");
        assert_eq!(ascii_classes(r"[[:alpha:]\s]"), r"[[:alpha:]\t\n\f\r ]");
        // BYTES patterns are Latin-1.
        let re = Compiled::new(b"\xff+", true).unwrap();
        assert_eq!(re.find_at(b"a\xff\xff", 0), Some((3, false, Some((1, 3)))));
    }

    #[test]
    fn format_integers_and_strings() {
        let s = |v: &str| Arg::Str(v.into());
        assert_eq!(
            ok("%s has id %d", &[s("Alice"), Arg::Int(1)]),
            "Alice has id 1"
        );
        assert_eq!(
            ok(
                "%5d|%-5d|%05d",
                &[Arg::Int(42), Arg::Int(42), Arg::Int(-42)]
            ),
            "   42|42   |-0042"
        );
        assert_eq!(
            ok("%+d % d %i", &[Arg::Int(5), Arg::Int(5), Arg::Int(-5)]),
            "+5  5 -5"
        );
        assert_eq!(ok("%'d", &[Arg::Int(-12345678)]), "-12,345,678");
        assert_eq!(
            ok(
                "%x %X %o %#x %#o",
                &[
                    Arg::Int(255),
                    Arg::Int(255),
                    Arg::Int(8),
                    Arg::Int(255),
                    Arg::Int(8)
                ]
            ),
            "ff FF 10 0xff 010"
        );
        assert_eq!(ok("%.3d", &[Arg::Int(7)]), "007");
        assert_eq!(
            ok(
                "%*d|%-*d",
                &[Arg::Int(4), Arg::Int(1), Arg::Int(3), Arg::Int(2)]
            ),
            "   1|2  "
        );
        assert_eq!(ok("%.2s|%5s|%%", &[s("abc"), s("é")]), "ab|    é|%");
        assert_eq!(
            ok(
                "%t|%T|%T|%t",
                &[s("a\"b"), s("x"), Arg::Int(3), Arg::Bool(true)]
            ),
            "a\"b|\"x\"|3|true"
        );
        // ZetaSQL's integer conversion for %o/%x/%X and the ' flag.
        assert_eq!(
            ok(
                "%x|%+x|%#x|%#o|%#X",
                &[
                    Arg::Int(-255),
                    Arg::Int(10),
                    Arg::Int(0),
                    Arg::Int(0),
                    Arg::Int(255)
                ]
            ),
            "-ff|+a|0x0|00|0XFF"
        );
        assert_eq!(
            ok(
                "%'x|%'o|%'d|%'.7d",
                &[
                    Arg::Int(0x12345678),
                    Arg::Int(0o12345),
                    Arg::Int(1234),
                    Arg::Int(5)
                ]
            ),
            "1234:5678|1,2345|1,234|0,000,005"
        );
        assert_eq!(
            ok(
                "%08.3x|%-6x|%#.5o|%.0d|%.0x",
                &[
                    Arg::Int(10),
                    Arg::Int(10),
                    Arg::Int(8),
                    Arg::Int(0),
                    Arg::Int(0)
                ]
            ),
            "0000000a|a     |00010||0"
        );
        // %s stops at a NUL.
        assert_eq!(ok("%s|", &[s("ab\0cd")]), "ab|");
        assert_eq!(ok("%T %t", &[Arg::Null, Arg::Null]), "NULL NULL");
        assert_eq!(
            ok("%T", &[Arg::Other("2024-01-01".into(), "DATE".into())]),
            "DATE \"2024-01-01\""
        );
        assert_eq!(fmt("%d", &[Arg::Null]).unwrap(), None);
        assert_eq!(fmt("%s", &[Arg::Null]).unwrap(), None);
    }

    #[test]
    fn format_floats_as_c_does() {
        let f = Arg::Float;
        assert_eq!(ok("%f", &[f(392.65)]), "392.650000");
        assert_eq!(
            ok(
                "%.2f|%8.3f|%-8.1f|%+.1f",
                &[f(3.14659), f(2.5), f(2.25), f(1.0)]
            ),
            "3.15|   2.500|2.2     |+1.0"
        );
        assert_eq!(
            ok("%e|%E", &[f(392.65), f(0.000123)]),
            "3.926500e+02|1.230000E-04"
        );
        assert_eq!(
            ok("%g|%g|%g|%G", &[f(392.65), f(0.0001), f(1e20), f(1e-5)]),
            "392.65|0.0001|1e+20|1E-05"
        );
        assert_eq!(
            ok("%g|%.3g|%#g", &[f(100000.0), f(1234.5), f(1.0)]),
            "100000|1.23e+03|1.00000"
        );
        assert_eq!(
            ok(
                "%f|%F|%f|%5.1f",
                &[
                    f(f64::INFINITY),
                    f(f64::NAN),
                    f(f64::NEG_INFINITY),
                    f(f64::NAN)
                ]
            ),
            "inf|NAN|-inf|  nan"
        );
        assert_eq!(ok("%010.2f", &[f(-3.5)]), "-000003.50");
    }

    #[test]
    fn format_refuses_what_it_cannot_answer() {
        let s = |v: &str| Arg::Str(v.into());
        let bad = |f: &str, args: &[Arg]| fmt(f, args).unwrap_err().to_string();
        assert!(bad("%d", &[Arg::Float(1.5)]).contains("%d takes INT64"));
        assert!(bad("%f", &[Arg::Int(1)]).contains("%f takes FLOAT64"));
        assert!(bad("%d %d", &[Arg::Int(1)]).contains("too few"));
        assert!(bad("%d", &[Arg::Int(1), Arg::Int(2)]).contains("too many"));
        assert!(bad("%999999999d", &[Arg::Int(1)]).contains("too large"));
        assert!(bad("%*d", &[Arg::Int(999_999_999), Arg::Int(1)]).contains("too large"));
        assert!(bad("%q", &[Arg::Int(1)]).contains("invalid specifier"));
        assert!(bad("%p", &[Arg::Int(1)]).contains("%p"));
        assert!(bad("%u", &[Arg::Int(1)]).contains("invalid specifier"));
        assert!(bad("abc%", &[]).contains("at the end"));
        assert!(bad("%s", &[Arg::Int(1)]).contains("%s takes STRING"));
        assert_eq!(
            ok(
                "%T|%T|%T|%T",
                &[s("it's"), s("say \"hi\""), s("a\"b'c"), s("é\n\u{1}a\\`")]
            ),
            "\"it's\"|'say \"hi\"'|\"a\\\"b'c\"|\"é\\n\\x01\\x61\\\\`\""
        );
        assert!(bad("%.1075f", &[Arg::Float(1.0)]).contains("too big"));
        assert_eq!(ok("%.2000g", &[Arg::Float(0.5)]), "0.5");
        assert!(bad("%t", &[Arg::Float(1.0)]).contains("only of STRING"));
    }
}
