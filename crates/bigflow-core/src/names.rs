//! Name rules shared by the model and everything that generates code or tags.

/// Whether `id` is a valid job or workflow id: ASCII letters, digits and `_`,
/// not starting with a digit, at most 200 characters.
pub fn is_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && id.len() <= 200
}

/// Whether `tag` may be used as a Docker image tag
/// (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
pub fn is_docker_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && tag.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags() {
        assert!(is_docker_tag("1.2.dev3-gabcdef12-t1234abcd"));
        assert!(!is_docker_tag("1.2+g1"));
        assert!(!is_docker_tag("-x"));
        assert!(!is_docker_tag(""));
        assert!(!is_docker_tag(&"a".repeat(129)));
    }
}
