//! Key naming: the only place a Redis key string is spelled.
//!
//! Every key is `{prefix}{group}:{id}` (`demo_api:cache:hello`). Identifiers from requests
//! are checked by [`identifier`] first (1 to 512 bytes). Patterns from requests are only ever
//! appended to the *escaped* namespace, so no pattern can reach outside it: the prefix is
//! matched literally even when it contains glob characters itself.

use std::sync::Arc;

use crate::error::ApiError;

/// Longest identifier (key, user id, resource, queue name) accepted, in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 512;

/// Builds keys and patterns under one prefix. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: Arc<str>,
}

/// The namespace of cache entries.
const CACHE: &str = "cache:";

impl Keys {
    /// Keys under `prefix` (e.g. `demo_api:`).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}cache:{key}`.
    pub fn cache(&self, key: &str) -> String {
        format!("{}{CACHE}{key}", self.prefix)
    }

    /// A SCAN `MATCH` pattern: the escaped cache namespace followed by the client's glob.
    pub fn cache_pattern(&self, glob: &str) -> String {
        format!(
            "{}{}",
            escape_glob(&format!("{}{CACHE}", self.prefix)),
            glob
        )
    }

    /// The client's key for a full cache key, or `None` when it is not one of ours.
    pub fn strip_cache<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&*self.prefix)?.strip_prefix(CACHE)
    }

    /// A SCAN `MATCH` pattern for every key under the prefix.
    pub fn everything_pattern(&self) -> String {
        format!("{}*", escape_glob(&self.prefix))
    }
}

/// Escapes the glob metacharacters of Redis `MATCH` (`* ? [ ] \`) so `s` matches literally.
pub fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Checks an identifier taken from a path or body: 1 to [`MAX_IDENTIFIER_BYTES`] bytes.
/// `field` names it in the error (`key`, `user_id`, ...).
pub fn identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(ApiError::bad_request(
            field,
            format!(
                "{field} is {} bytes long; at most {MAX_IDENTIFIER_BYTES} are allowed",
                value.len()
            ),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_live_under_the_prefix() {
        let k = Keys::new("demo_api:");
        assert_eq!(k.cache("hello"), "demo_api:cache:hello");
        assert_eq!(k.strip_cache("demo_api:cache:hello"), Some("hello"));
        assert_eq!(k.strip_cache("other:cache:hello"), None);
        assert_eq!(k.strip_cache("demo_api:user:1"), None);
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        let k = Keys::new("a*[b]?\\:");
        assert_eq!(k.cache_pattern("*"), "a\\*\\[b\\]\\?\\\\:cache:*");
        assert_eq!(k.everything_pattern(), "a\\*\\[b\\]\\?\\\\:*");
    }

    #[test]
    fn identifiers_are_bounded() {
        assert!(identifier("key", "").is_err());
        assert!(identifier("key", &"x".repeat(512)).is_ok());
        assert!(identifier("key", &"x".repeat(513)).is_err());
    }
}
