//! `{name}` placeholders: the one templating rule of BigFlow strings.
//!
//! Config values (`'{gcp_project_id}-bucket'`), external-program arguments
//! and (later) SQL all use it. `{{` and `}}` stand for literal braces. A
//! placeholder names a property (letters, digits, `_`, `.`); an unknown name
//! is an error that says which name, never a silently kept `{x}`.

/// Why a template could not be filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `{` without its `}`.
    #[error("'{{' at byte {position} is never closed; write '{{{{' for a literal brace")]
    Unclosed {
        /// Byte offset of the `{`.
        position: usize,
    },
    /// `}` without a `{`.
    #[error("'}}' at byte {position} has no opening '{{'; write '}}}}' for a literal brace")]
    Unopened {
        /// Byte offset of the `}`.
        position: usize,
    },
    /// `{...}` that is not a name.
    #[error(
        "'{{{text}}}' is not a placeholder name (letters, digits, '_' and '.'); write '{{{{' for a literal brace"
    )]
    BadName {
        /// What was between the braces.
        text: String,
    },
    /// The filled-in text would exceed [`MAX_EXPANDED_LEN`] (references that
    /// repeat other references grow exponentially).
    #[error(
        "filling in the placeholders makes more than {limit} bytes of text; look for properties that refer to each other repeatedly"
    )]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// A name nothing defines.
    #[error("unknown placeholder '{{{name}}}'{hint}")]
    Unknown {
        /// The name.
        name: String,
        /// Known names, when the caller has a short list.
        hint: String,
    },
}

/// The longest text a template may expand to: 16 MiB, far above any real
/// config value or BigQuery query (BigQuery's limit is 1 MB), far below what
/// would exhaust memory.
pub const MAX_EXPANDED_LEN: usize = 16 << 20;

/// The names a template refers to, in order (duplicates kept).
pub fn placeholders(template: &str) -> Result<Vec<&str>, InterpolationError> {
    let mut names = Vec::new();
    scan(template, |piece| {
        if let Piece::Name(n) = piece {
            names.push(n);
        }
    })?;
    Ok(names)
}

/// Fills each `{name}` with `lookup(name)`; `None` means unknown.
pub fn interpolate(
    template: &str,
    mut lookup: impl FnMut(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    try_interpolate(template, |name| {
        lookup(name).ok_or_else(|| InterpolationError::Unknown {
            name: name.to_string(),
            hint: String::new(),
        })
    })
}

/// Like [`interpolate`] with a lookup that returns its own error.
pub fn try_interpolate<E: From<InterpolationError>>(
    template: &str,
    mut lookup: impl FnMut(&str) -> Result<String, E>,
) -> Result<String, E> {
    let mut pieces = Vec::new();
    scan(template, |p| pieces.push(p))?;
    let mut out = String::with_capacity(template.len());
    for piece in pieces {
        let filled;
        let text = match piece {
            Piece::Text(t) => t,
            Piece::Name(n) => {
                filled = lookup(n)?;
                &filled
            }
        };
        if out.len() + text.len() > MAX_EXPANDED_LEN {
            return Err(InterpolationError::TooLong {
                limit: MAX_EXPANDED_LEN,
            }
            .into());
        }
        out.push_str(text);
    }
    Ok(out)
}

enum Piece<'a> {
    Text(&'a str),
    Name(&'a str),
}

fn scan<'a>(template: &'a str, mut emit: impl FnMut(Piece<'a>)) -> Result<(), InterpolationError> {
    let bytes = template.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                emit(Piece::Text(&template[text_start..i + 1]));
                i += 2;
                text_start = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                emit(Piece::Text(&template[text_start..i + 1]));
                i += 2;
                text_start = i;
            }
            b'{' => {
                let close = template[i + 1..]
                    .find('}')
                    .map(|off| i + 1 + off)
                    .ok_or(InterpolationError::Unclosed { position: i })?;
                let name = &template[i + 1..close];
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    return Err(InterpolationError::BadName {
                        text: name.to_string(),
                    });
                }
                emit(Piece::Text(&template[text_start..i]));
                emit(Piece::Name(name));
                i = close + 1;
                text_start = i;
            }
            b'}' => return Err(InterpolationError::Unopened { position: i }),
            _ => i += 1,
        }
    }
    emit(Piece::Text(&template[text_start..]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "a" => Some("A".into()),
            "env" => Some("dev".into()),
            _ => None,
        }
    }

    #[test]
    fn fills_and_escapes() {
        assert_eq!(interpolate("{a}-{env}", vars).unwrap(), "A-dev");
        assert_eq!(interpolate("{{a}} {a}", vars).unwrap(), "{a} A");
        assert_eq!(interpolate("no braces", vars).unwrap(), "no braces");
        assert_eq!(interpolate("zażółć {a}", vars).unwrap(), "zażółć A");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            interpolate("{b}", vars).unwrap_err(),
            InterpolationError::Unknown {
                name: "b".into(),
                hint: String::new()
            }
        );
        assert_eq!(
            interpolate("x {a", vars).unwrap_err(),
            InterpolationError::Unclosed { position: 2 }
        );
        assert_eq!(
            interpolate("x } y", vars).unwrap_err(),
            InterpolationError::Unopened { position: 2 }
        );
        assert!(matches!(
            interpolate("{a b}", vars),
            Err(InterpolationError::BadName { .. })
        ));
        assert!(matches!(
            interpolate("{}", vars),
            Err(InterpolationError::BadName { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = interpolate(&s, |n| Some(n.to_uppercase()));
        }

        #[test]
        fn escaped_text_round_trips(s in "\\PC{0,40}") {
            let escaped = s.replace('{', "{{").replace('}', "}}");
            prop_assert_eq!(interpolate(&escaped, |_| None).unwrap(), s);
        }
    }
}
