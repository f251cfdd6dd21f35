//! Python literals: how every value reaches a generated DAG file.
//!
//! Strings become double-quoted literals with every quote, backslash,
//! control character and non-ASCII character escaped, so the generated file
//! is pure ASCII and no value can end a literal, a comment or a line.

use minijinja::value::{Value, ValueKind};

/// `s` as a Python string literal.
pub fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// The minijinja filter `py`: any template value as a Python literal.
pub fn py_literal(value: &Value) -> Result<String, minijinja::Error> {
    let unsupported = || {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("no Python literal for {value:?}"),
        )
    };
    Ok(match value.kind() {
        ValueKind::Undefined => {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "undefined value in a DAG template",
            ));
        }
        ValueKind::None => "None".to_string(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_string(),
        ValueKind::Number => {
            let text = value.to_string();
            if text
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+'))
            {
                text
            } else {
                return Err(unsupported());
            }
        }
        ValueKind::String => py_str(value.as_str().unwrap_or_default()),
        ValueKind::Seq => {
            let items = value
                .try_iter()?
                .map(|v| py_literal(&v))
                .collect::<Result<Vec<_>, _>>()?;
            format!("[{}]", items.join(", "))
        }
        _ => return Err(unsupported()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(py_str("plain"), "\"plain\"");
        assert_eq!(py_str("a\"b\\c\nd\re\tf"), "\"a\\\"b\\\\c\\nd\\re\\tf\"");
        assert_eq!(
            py_str("zażółć 🚀"),
            "\"za\\u017c\\xf3\\u0142\\u0107 \\U0001f680\""
        );
        assert_eq!(py_str("\u{0}\u{7f}"), "\"\\x00\\x7f\"");
        assert!(py_str("{{ x }}').__import__('os')#").is_ascii());
    }
}
