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

/// `len` random lower-case hex digits: for ids that must not collide
/// between runs and processes (run ids, request ids, resource suffixes).
/// Seeded from the standard library's per-process random hash keys, the
/// time and a counter; not for secrets.
pub fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_hex(12)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 12 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn docker_tags() {
        assert!(is_docker_tag("1.2.dev3-gabcdef12-t1234abcd"));
        assert!(!is_docker_tag("1.2+g1"));
        assert!(!is_docker_tag("-x"));
        assert!(!is_docker_tag(""));
        assert!(!is_docker_tag(&"a".repeat(129)));
    }
}
