//! The `.test` format of GoogleSQL's conformance suite: cases, their
//! options, and the expected values (`ARRAY<STRUCT<…>>[…]`, `ERROR: …`),
//! parsed with the types the header gives.

/// One case of a `.test` file.
#[derive(Debug, Clone)]
pub struct Case {
    /// `[name=…]`; `prepare:<table>` for unnamed `[prepare_database]` cases.
    pub name: String,
    /// `[prepare_database]`: the statement creates a table later cases use.
    pub prepare: bool,
    /// `[required_features=…]` (with the file's `[default required_features=…]`).
    pub required: Vec<String>,
    /// `[forbidden_features=…]`.
    pub forbidden: Vec<String>,
    /// `[parameters=expr AS name, …]`.
    pub parameters: Vec<(String, String)>,
    /// The file's `[default_time_zone=…]` in force, if any.
    pub time_zone: Option<String>,
    /// `[primary_key_mode=…]`: `first_column_is_primary_key` makes the
    /// engine enforce the first column as a primary key.
    pub primary_key_mode: Option<String>,
    /// Whether the file loads protos (`[load_proto_files=…]`) before this case.
    pub protos: bool,
    /// The statement.
    pub sql: String,
    /// What it must give.
    pub expected: Expected,
}

/// A case's expected outcome.
#[derive(Debug, Clone)]
pub enum Expected {
    /// An error (any error of ours matches).
    Error(String),
    /// A value of a type.
    Value(Ty, V),
    /// Nothing given (or the text did not parse: the reason).
    Unreadable(String),
}

/// A type of the expected values.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// `INT64`, `STRING`, …
    Scalar(String),
    /// `ARRAY<T>`, or `ARRAY<>` (each value names its own element type).
    Array(Option<Box<Ty>>),
    /// `STRUCT<[name] T, …>`.
    Struct(Vec<(Option<String>, Ty)>),
    /// `RANGE<…>`, `PROTO<…>`, `ENUM<…>`: kept as text.
    Other(String),
}

impl Ty {
    /// Every scalar or other type name used inside.
    pub fn names(&self, out: &mut Vec<String>) {
        match self {
            Ty::Scalar(s) | Ty::Other(s) => out.push(s.clone()),
            Ty::Array(Some(t)) => {
                if matches!(**t, Ty::Array(_)) {
                    out.push("ARRAY<ARRAY>".into());
                }
                t.names(out)
            }
            Ty::Array(None) => {}
            Ty::Struct(fields) => fields.iter().for_each(|(_, t)| t.names(out)),
        }
    }
}

/// An expected value.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    /// `NULL` (typed or not).
    Null,
    /// A scalar literal as written (`1`, `2001-01-01`, `1.5e+10`, JSON text).
    Raw(String),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An array: its element type (when given by the value), whether its
    /// order counts, its elements.
    Array(Option<Ty>, bool, Vec<V>),
    /// A struct's fields, in order.
    Struct(Option<Ty>, Vec<V>),
}

/// Splits a `.test` file into its cases.
pub fn parse_file(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut default_required: Vec<String> = Vec::new();
    let mut time_zone: Option<String> = None;
    let mut protos = false;
    for (index, chunk) in split_chunks(text).into_iter().enumerate() {
        let mut name = None;
        let mut prepare = false;
        let mut required = default_required.clone();
        let mut forbidden = Vec::new();
        let mut parameters = Vec::new();
        let mut primary_key_mode = None;
        let mut body = Vec::new();
        let mut in_options = true;
        let mut pending = String::new();
        for line in chunk.lines() {
            let joined;
            let mut trimmed = line.trim();
            if in_options
                && (!pending.is_empty() || (trimmed.starts_with('[') && !trimmed.ends_with(']')))
            {
                // An option over several lines.
                pending.push_str(trimmed);
                pending.push(' ');
                if !trimmed.ends_with(']') {
                    continue;
                }
                joined = std::mem::take(&mut pending);
                trimmed = joined.trim();
            }
            if in_options {
                if trimmed.starts_with('#') || trimmed.is_empty() {
                    continue;
                }
                if let Some(opt) = trimmed.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
                    let list = || {
                        value
                            .split(',')
                            .map(|f| f.trim().to_string())
                            .filter(|f| !f.is_empty())
                            .collect::<Vec<_>>()
                    };
                    match key.trim() {
                        "name" => name = Some(value.trim().to_string()),
                        "prepare_database" => prepare = true,
                        "required_features" => required.extend(list()),
                        "forbidden_features" => forbidden.extend(list()),
                        "default required_features" => default_required = list(),
                        "default_time_zone" => time_zone = Some(value.trim().to_string()),
                        "load_proto_files" | "load_proto_names" | "load_enum_names" => {
                            protos = true
                        }
                        "parameters" => parameters = split_parameters(value),
                        "primary_key_mode" => primary_key_mode = Some(value.trim().to_string()),
                        _ => {}
                    }
                    continue;
                }
                in_options = false;
            }
            body.push(line);
        }
        let body = body.join("\n");
        let Some((sql, expected)) = split_expected(&body) else {
            continue; // options only (file defaults)
        };
        let expected = parse_expected(expected.trim());
        let name = name.unwrap_or_else(|| {
            if prepare {
                format!("prepare:{}", created_table(&sql).unwrap_or_default())
            } else {
                format!("unnamed_{index}")
            }
        });
        cases.push(Case {
            name,
            prepare,
            required,
            forbidden,
            parameters,
            primary_key_mode,
            time_zone: time_zone.clone(),
            protos,
            sql: sql.trim().to_string(),
            expected,
        });
    }
    cases
}

/// Chunks between `==` lines.
fn split_chunks(text: &str) -> Vec<String> {
    let mut chunks = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "==" {
            chunks.push(String::new());
        } else {
            let last = chunks.last_mut().expect("one chunk");
            last.push_str(line);
            last.push('\n');
        }
    }
    chunks
}

/// The statement and the expected text around the first `--` line.
fn split_expected(body: &str) -> Option<(String, String)> {
    let mut sql = Vec::new();
    let mut lines = body.lines();
    for line in lines.by_ref() {
        if line.trim_end() == "--" {
            let rest: Vec<&str> = lines.collect();
            return Some((sql.join("\n"), rest.join("\n")));
        }
        // `\--` at the start of a line is a literal `--` (a SQL comment),
        // escaped so that it does not end the statement.
        sql.push(
            line.strip_prefix('\\')
                .filter(|l| l.starts_with("--"))
                .unwrap_or(line),
        );
    }
    None
}

/// `expr AS name, …` split at top-level commas.
fn split_parameters(value: &str) -> Vec<(String, String)> {
    top_level_split(value, ',')
        .into_iter()
        .filter_map(|p| {
            let lower = p.to_ascii_lowercase();
            let at = lower.rfind(" as ")?;
            Some((p[..at].trim().to_string(), p[at + 4..].trim().to_string()))
        })
        .collect()
}

/// Splits at `sep` outside parentheses, brackets and quotes.
pub fn top_level_split(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if let Some(q) = quote {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' | '[' | '<' | '{' => depth += 1,
            ')' | ']' | '>' | '}' => depth -= 1,
            _ if c == sep && depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        parts.push(current);
    }
    parts
}

/// The table a `CREATE TABLE name …` statement makes.
pub fn created_table(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().take(8).collect();
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("table"))?;
    words
        .get(at + 1)
        .map(|w| w.trim_matches('`').trim_end_matches('(').to_string())
}

fn parse_expected(text: &str) -> Expected {
    if text.is_empty() {
        return Expected::Unreadable("no expected result".into());
    }
    if text.contains("Reference implementation reports non-determinism") {
        return Expected::Unreadable(
            "non-deterministic: the reference implementation says the result may vary".into(),
        );
    }
    if let Some(message) = text.strip_prefix("ERROR:") {
        return Expected::Error(message.lines().next().unwrap_or("").trim().to_string());
    }
    let mut p = Parser::new(text);
    let parsed = p.ty().and_then(|ty| {
        let v = p.value(&ty, true)?;
        Ok((ty, v))
    });
    match parsed {
        Ok((ty, v)) => Expected::Value(ty, v),
        Err(e) => Expected::Unreadable(format!("cannot read the expected value: {e}")),
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

type PResult<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, token: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(token.as_bytes()) {
            self.i += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str) -> PResult<()> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(format!("expected `{token}` at byte {}", self.i))
        }
    }

    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.s.len()
            && !self.s[self.i].is_ascii_whitespace()
            && !b"<>,{}[]()".contains(&self.s[self.i])
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// Text up to the `>` closing an already opened `<`.
    fn angle_text(&mut self) -> PResult<String> {
        let start = self.i;
        let mut depth = 1;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'<' => depth += 1,
                b'>' => {
                    depth -= 1;
                    if depth == 0 {
                        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                        self.i += 1;
                        return Ok(text);
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        Err("unclosed `<`".into())
    }

    fn ty(&mut self) -> PResult<Ty> {
        let name = self.ident();
        self.type_after(name)
    }

    fn type_after(&mut self, name: String) -> PResult<Ty> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "ARRAY" => {
                self.expect("<")?;
                if self.eat(">") {
                    return Ok(Ty::Array(None));
                }
                let t = self.ty()?;
                self.expect(">")?;
                Ok(Ty::Array(Some(Box::new(t))))
            }
            "STRUCT" => {
                self.expect("<")?;
                let mut fields = Vec::new();
                loop {
                    if self.eat(">") {
                        return Ok(Ty::Struct(fields));
                    }
                    let first = self.ident();
                    let field = match self.peek() {
                        Some(b',') | Some(b'>') | Some(b'<') => (None, self.type_after(first)?),
                        _ => (Some(first), self.ty()?),
                    };
                    fields.push(field);
                    self.eat(",");
                }
            }
            _ => {
                if self.peek() == Some(b'<') {
                    self.i += 1;
                    let inner = self.angle_text()?;
                    Ok(Ty::Other(format!("{upper}<{inner}>")))
                } else if upper.is_empty() {
                    Err(format!("expected a type at byte {}", self.i))
                } else {
                    Ok(Ty::Scalar(upper))
                }
            }
        }
    }

    fn null_follows(&mut self) -> bool {
        self.ws();
        let rest = &self.s[self.i..];
        if rest.starts_with(b"NULL")
            && rest
                .get(4)
                .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_')
        {
            self.i += 4;
            true
        } else {
            false
        }
    }

    fn value(&mut self, ty: &Ty, top: bool) -> PResult<V> {
        if self.null_follows() {
            return Ok(V::Null);
        }
        match ty {
            Ty::Array(elem) => {
                let mut given = None;
                if self.s[self.i..].starts_with(b"ARRAY<") {
                    given = Some(self.ty()?);
                }
                if self.eat("(NULL)") {
                    return Ok(V::Null);
                }
                let elem_ty = match (&given, elem) {
                    (Some(Ty::Array(Some(t))), _) => (**t).clone(),
                    (_, Some(t)) => (**t).clone(),
                    _ => Ty::Other("?".into()),
                };
                self.expect("[")?;
                // Top-level rows count their order only when marked; arrays
                // inside values keep theirs unless marked otherwise.
                let mut ordered = !top;
                if self.eat("known order:") {
                    ordered = true;
                } else if self.eat("unknown order:") {
                    ordered = false;
                }
                let mut items = Vec::new();
                loop {
                    if self.eat("]") {
                        break;
                    }
                    items.push(self.value(&elem_ty, false)?);
                    if !self.eat(",") {
                        self.expect("]")?;
                        break;
                    }
                }
                Ok(V::Array(given, ordered, items))
            }
            Ty::Struct(fields) => {
                let mut given = None;
                if self.s[self.i..].starts_with(b"STRUCT<") {
                    given = Some(self.ty()?);
                }
                if self.eat("(NULL)") {
                    return Ok(V::Null);
                }
                let fields = match &given {
                    Some(Ty::Struct(f)) => f.clone(),
                    _ => fields.clone(),
                };
                self.expect("{")?;
                let mut items = Vec::new();
                loop {
                    if self.eat("}") {
                        break;
                    }
                    let t = fields
                        .get(items.len())
                        .map(|(_, t)| t.clone())
                        .unwrap_or(Ty::Other("?".into()));
                    items.push(self.value(&t, false)?);
                    if !self.eat(",") {
                        self.expect("}")?;
                        break;
                    }
                }
                Ok(V::Struct(given, items))
            }
            Ty::Scalar(s) if s == "STRING" => Ok(V::Str(
                String::from_utf8_lossy(&self.quoted()?).into_owned(),
            )),
            Ty::Scalar(s) if s == "BYTES" => {
                self.expect("b")?;
                Ok(V::Bytes(self.quoted()?))
            }
            _ => Ok(V::Raw(self.raw()?)),
        }
    }

    /// A scalar written as is: up to a `,`, `}` or `]` outside brackets and quotes.
    fn raw(&mut self) -> PResult<String> {
        self.ws();
        let start = self.i;
        let mut depth = 0i32;
        let mut quote: Option<u8> = None;
        while self.i < self.s.len() {
            let c = self.s[self.i];
            if let Some(q) = quote {
                if c == b'\\' {
                    self.i += 1;
                } else if c == q {
                    quote = None;
                }
            } else {
                match c {
                    b'"' | b'\'' => quote = Some(c),
                    b'[' | b'{' | b'(' => depth += 1,
                    b']' | b'}' | b')' if depth == 0 => break,
                    b']' | b'}' | b')' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            self.i += 1;
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i])
            .trim()
            .to_string();
        if text.is_empty() {
            return Err(format!("empty value at byte {start}"));
        }
        Ok(text)
    }

    /// A quoted string with C-style escapes, as bytes.
    fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.ws();
        let q = *self.s.get(self.i).ok_or("expected a quote")?;
        if q != b'"' && q != b'\'' {
            return Err(format!("expected a quote at byte {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            self.i += 1;
            if c == q {
                return Ok(out);
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let e = *self.s.get(self.i).ok_or("dangling escape")?;
            self.i += 1;
            let hex = |p: &mut Self, n: usize| -> PResult<u32> {
                let digits = std::str::from_utf8(p.s.get(p.i..p.i + n).ok_or("short escape")?)
                    .map_err(|e| e.to_string())?;
                p.i += n;
                u32::from_str_radix(digits, 16).map_err(|e| e.to_string())
            };
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'a' => out.push(7),
                b'b' => out.push(8),
                b'f' => out.push(12),
                b'v' => out.push(11),
                b'x' | b'X' => out.push(hex(self, 2)? as u8),
                b'u' | b'U' => {
                    let n = if e == b'u' { 4 } else { 8 };
                    let c = char::from_u32(hex(self, n)?).ok_or("bad code point")?;
                    out.extend_from_slice(c.to_string().as_bytes());
                }
                b'0'..=b'7' => {
                    let digits = std::str::from_utf8(&self.s[self.i - 1..self.i + 2])
                        .map_err(|e| e.to_string())?;
                    self.i += 2;
                    out.push(u8::from_str_radix(digits, 8).map_err(|e| e.to_string())?);
                }
                other => out.push(other),
            }
        }
        Err("unclosed string".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cases_and_values() {
        let text = "[default required_features=CIVIL_TIME]\n==\n[name=a]\n# c\nSELECT 1 x, 'a'\n--\nARRAY<STRUCT<x INT64, STRING>>[known order:{1, \"a\\x41\"}, {NULL, 'b'}]\n==\n[name=b]\nSELECT 1/0\n--\nERROR: generic::out_of_range: division by zero\n";
        let cases = parse_file(text);
        assert_eq!(cases.len(), 2);
        assert_eq!(cases[0].required, vec!["CIVIL_TIME".to_string()]);
        let Expected::Value(ty, V::Array(_, ordered, rows)) = &cases[0].expected else {
            panic!("{:?}", cases[0].expected)
        };
        assert!(ordered);
        assert_eq!(
            *ty,
            Ty::Array(Some(Box::new(Ty::Struct(vec![
                (Some("x".into()), Ty::Scalar("INT64".into())),
                (None, Ty::Scalar("STRING".into()))
            ]))))
        );
        assert_eq!(
            rows[0],
            V::Struct(None, vec![V::Raw("1".into()), V::Str("aA".into())])
        );
        assert!(matches!(cases[1].expected, Expected::Error(_)));
    }
}
