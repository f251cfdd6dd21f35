//! GoogleSQL string and bytes literals.
//!
//! Statements are tokenized without sqlparser's own unescaping (which knows
//! MySQL's escapes, not GoogleSQL's: `'\x41'` became `x41`), so literals
//! keep their text as written; [`unescape_string`] and [`unescape_bytes`]
//! then apply GoogleSQL's escapes: `\a \b \f \n \r \t \v \\ \? \" \' \``,
//! octal `\101` (three digits), hex `\x41` (two), `\u0041` (four) and
//! `\U00000041` (eight). Raw literals (`r'…'`) are taken as written.
//!
//! In a STRING literal an octal or hex escape is the character of that
//! code point (`'\xE2'` is `â`); in a BYTES literal it is the byte.

/// Why a literal is invalid.
pub type LiteralError = String;

/// What one escape stands for.
enum Escaped {
    /// A character (in BYTES: its UTF-8 encoding).
    Char(char),
    /// `\x..` or an octal escape: a code point in a STRING, a byte in BYTES.
    Byte(u8),
}

/// Reads the escape after a backslash from `chars`.
fn escape(chars: &mut std::str::Chars<'_>) -> Result<Escaped, LiteralError> {
    let Some(c) = chars.next() else {
        return Err("the literal ends with a backslash".into());
    };
    let digits = |chars: &mut std::str::Chars<'_>, n: usize, radix: u32, what: &str| {
        let text: String = chars.clone().take(n).collect();
        if text.chars().count() != n || !text.chars().all(|d| d.is_digit(radix)) {
            return Err(format!(
                "illegal escape sequence: {what} needs {n} {} digits",
                if radix == 16 { "hex" } else { "octal" }
            ));
        }
        for _ in 0..n {
            chars.next();
        }
        u32::from_str_radix(&text, radix).map_err(|e| e.to_string())
    };
    Ok(match c {
        'a' => Escaped::Char('\u{7}'),
        'b' => Escaped::Char('\u{8}'),
        'f' => Escaped::Char('\u{c}'),
        'n' => Escaped::Char('\n'),
        'r' => Escaped::Char('\r'),
        't' => Escaped::Char('\t'),
        'v' => Escaped::Char('\u{b}'),
        '\\' | '?' | '"' | '\'' | '`' => Escaped::Char(c),
        'x' | 'X' => Escaped::Byte(digits(chars, 2, 16, "\\x")? as u8),
        '0'..='7' => {
            let rest: String = chars.clone().take(2).collect();
            let text = format!("{c}{rest}");
            if text.len() != 3 || !text.chars().all(|d| d.is_digit(8)) {
                return Err("illegal escape sequence: octal escapes need 3 octal digits".into());
            }
            chars.next();
            chars.next();
            let v = u32::from_str_radix(&text, 8).map_err(|e| e.to_string())?;
            Escaped::Byte(
                u8::try_from(v)
                    .map_err(|_| format!("illegal escape sequence: \\{text} is above \\377"))?,
            )
        }
        'u' | 'U' => {
            let n = if c == 'u' { 4 } else { 8 };
            let v = digits(chars, n, 16, if c == 'u' { "\\u" } else { "\\U" })?;
            Escaped::Char(char::from_u32(v).ok_or_else(|| {
                format!("illegal escape sequence: \\{c}{v:0n$X} is not a Unicode character")
            })?)
        }
        other => return Err(format!("illegal escape sequence: \\{other}")),
    })
}

/// The value of a STRING literal's text (between its quotes).
pub fn unescape_string(text: &str) -> Result<String, LiteralError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match escape(&mut chars)? {
            Escaped::Char(c) => out.push(c),
            Escaped::Byte(b) => out.push(char::from(b)),
        }
    }
    Ok(out)
}

/// The value of a BYTES literal's text (between its quotes).
pub fn unescape_bytes(text: &str) -> Result<Vec<u8>, LiteralError> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        let c = if c == '\\' {
            match escape(&mut chars)? {
                Escaped::Char(c) => c,
                Escaped::Byte(b) => {
                    out.push(b);
                    continue;
                }
            }
        } else {
            c
        };
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    Ok(out)
}

/// Bytes as the text of a hex literal (`X'…'`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn googlesql_escapes() {
        assert_eq!(unescape_string(r"\x41").unwrap(), "A");
        assert_eq!(unescape_string(r"\X41B").unwrap(), "AB");
        assert_eq!(unescape_string(r"\u0041").unwrap(), "A");
        assert_eq!(unescape_string(r"\U00000041").unwrap(), "A");
        assert_eq!(unescape_string(r"\101\1234").unwrap(), "AS4");
        assert_eq!(
            unescape_string(r"a\ab\bc\fd\ne\rf\tg\vh\\i\?j\'k\`l\m").unwrap_err(),
            r"illegal escape sequence: \m"
        );
        assert_eq!(
            unescape_string(r#"\a\b\f\n\r\t\v\\\?\'\"\`"#).unwrap(),
            "\u{7}\u{8}\u{c}\n\r\t\u{b}\\?'\"`"
        );
        // In a STRING a hex escape is a code point, not a byte.
        assert_eq!(unescape_string(r"\xE2").unwrap(), "\u{e2}");
        assert_eq!(unescape_string("€").unwrap(), "€");
        assert!(unescape_string(r"\x4").is_err());
        assert!(unescape_string(r"\12").is_err());
        assert!(unescape_string(r"\400").is_err());
        assert!(unescape_string(r"\uD800").is_err());
        assert!(unescape_string("a\\").is_err());
    }

    #[test]
    fn bytes_escapes_are_bytes() {
        assert_eq!(unescape_bytes(r"\xE2\x82\xAC").unwrap(), "€".as_bytes());
        assert_eq!(unescape_bytes("€").unwrap(), "€".as_bytes());
        assert_eq!(unescape_bytes(r"a\001").unwrap(), b"a\x01");
        assert_eq!(hex(b"\x01\xab"), "01AB");
    }
}
