//! Property tests (proptest) of the parsing and key-building code: no input makes them
//! panic, and no client pattern can match a key outside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use shared::{
    ApiError, Config,
    extract::parse_json,
    keys::{Keys, escape_glob, identifier},
    models::PutEntry,
};

/// Redis's `stringmatch` (util.c) for the pattern syntax SCAN MATCH uses: `*`, `?`,
/// `[...]` with `^` and ranges, and `\` escapes. A reference to check confinement against.
fn glob(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some('?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some('[') => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let negate = p.get(i) == Some(&'^');
            if negate {
                i += 1;
            }
            let mut matched = false;
            loop {
                match p.get(i) {
                    None => {
                        i -= 1; // unterminated: Redis treats the end as the close
                        break;
                    }
                    Some(']') => break,
                    Some('\\') if p.get(i + 1).is_some() => {
                        matched |= p[i + 1] == *c;
                        i += 2;
                    }
                    Some(&a)
                        if p.get(i + 1) == Some(&'-')
                            && p.get(i + 2).is_some_and(|b| *b != ']') =>
                    {
                        let b = p[i + 2];
                        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                        matched |= lo <= *c && *c <= hi;
                        i += 3;
                    }
                    Some(&a) => {
                        matched |= a == *c;
                        i += 1;
                    }
                }
            }
            matched != negate && glob(&p[i + 1..], &s[1..])
        }
        Some('\\') if p.len() >= 2 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

fn matches(pattern: &str, key: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = key.chars().collect();
    glob(&p, &s)
}

/// The part of a key Redis Cluster hashes (its hash tag rule, from the cluster spec): between
/// the first `{` and the next `}` when that is not empty, else the whole key.
fn hashed_part(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

const ALPHABET: &str = "[a-c*?\\[\\]\\\\^:{}-]{0,8}";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the prefix and the client's glob, a key the pattern matches is in the
    /// cache namespace.
    #[test]
    fn no_pattern_escapes_the_namespace(prefix in "[a-c*?\\[\\]\\\\^:]{1,6}", user in ALPHABET, key in ALPHABET) {
        let keys = Keys::new(&prefix);
        let pattern = keys.cache_pattern(&user);
        if matches(&pattern, &key) {
            prop_assert!(key.starts_with(&format!("{prefix}cache:")), "{pattern} matched {key}");
        }
        // And the namespace's own keys are found by a match-all pattern.
        prop_assert!(matches(&keys.cache_pattern("*"), &keys.cache(&key)));
        prop_assert!(matches(&keys.everything_pattern(), &keys.cache(&key)));
    }

    #[test]
    fn escaped_text_matches_only_itself(s in ALPHABET, other in ALPHABET) {
        let escaped = escape_glob(&s);
        prop_assert!(matches(&escaped, &s));
        if other != s {
            prop_assert!(!matches(&escaped, &other));
        }
    }

    #[test]
    fn keys_round_trip(prefix in "[a-z_:]{1,12}", id in any::<String>()) {
        let keys = Keys::new(&prefix);
        let full = keys.cache(&id);
        prop_assert_eq!(keys.strip_cache(&full), Some(id.as_str()));
        prop_assert!(keys.user(&id).starts_with(&prefix));
        let (lock, fence) = keys.lock(&id);
        prop_assert!(lock.starts_with(&prefix) && fence.starts_with(&lock));
        for k in keys.queue(&id) {
            prop_assert!(k.starts_with(&prefix));
        }
    }

    #[test]
    fn identifiers_are_1_to_512_characters(id in any::<String>()) {
        let n = id.chars().count();
        prop_assert_eq!(identifier("key", &id).is_ok(), (1..=512).contains(&n));
    }

    #[test]
    fn any_body_is_parsed_or_refused_with_a_4xx(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match parse_json::<PutEntry>(&bytes) {
            Ok(_) => {}
            Err(e @ (ApiError::BadRequest { .. } | ApiError::Validation { .. })) => {
                prop_assert!(e.status().is_client_error());
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn any_json_body_is_parsed_or_refused_with_a_4xx(key in any::<String>(), ttl in any::<i64>(), extra in any::<bool>()) {
        let mut body = serde_json::json!({"key": key, "value": [1, {"a": null}], "ttl": ttl});
        if extra {
            body["surprise"] = serde_json::json!(true);
        }
        let result = parse_json::<PutEntry>(body.to_string().as_bytes());
        // The key is checked as it is read: a body is taken only with a valid one.
        let key_ok = shared::keys::path_identifier("key", &key).is_ok();
        prop_assert_eq!(result.is_ok(), ttl >= 0 && !extra && key_ok);
    }

    /// The keys one script touches together (a lock and its fence; a queue's four keys)
    /// always land in one cluster slot, whatever braces the prefix and the name hold; and
    /// two different names never share a key.
    #[test]
    fn a_lock_or_a_queue_lives_in_one_slot(prefix in "[a-c{}:]{1,6}", name in "[a-c{}:]{1,8}", other in "[a-c{}:]{1,8}") {
        prop_assume!(Config::from_lookup(|n| (n == "KEY_PREFIX").then(|| prefix.clone())).is_ok());
        let keys = Keys::new(&prefix);
        let (lock, fence) = keys.lock(&name);
        prop_assert_ne!(hashed_part(&lock), lock.as_str(), "{} has no hash tag", lock);
        prop_assert_eq!(hashed_part(&lock), hashed_part(&fence));
        let queue = keys.queue(&name);
        for key in &queue[1..] {
            prop_assert_eq!(hashed_part(&queue[0]), hashed_part(key));
        }
        if name != other {
            prop_assert_ne!(lock, keys.lock(&other).0);
            prop_assert_ne!(&queue[0], &keys.queue(&other)[0]);
        }
    }

    #[test]
    fn any_environment_is_accepted_or_refused_by_name(value in any::<String>(), pick in 0usize..8) {
        let names = ["REDIS_URL", "KEY_PREFIX", "DEFAULT_TTL",
            "REDIS_CONNECT_TIMEOUT_MS", "REDIS_RESPONSE_TIMEOUT_MS", "MAX_BODY_BYTES", "API_KEY",
            "REDIS_MODE"];
        let name = names[pick];
        match Config::from_lookup(|n| (n == name).then(|| value.clone())) {
            Ok(_) => {}
            Err(e) => prop_assert_eq!(e.variable, name),
        }
    }
}

#[test]
fn the_reference_glob_agrees_with_redis_on_known_cases() {
    assert!(matches("h?llo", "hello"));
    assert!(matches("h*llo", "heeeello"));
    assert!(matches("h[ae]llo", "hallo"));
    assert!(!matches("h[^e]llo", "hello"));
    assert!(matches("h[a-b]llo", "hbllo"));
    assert!(matches("a\\*b", "a*b"));
    assert!(!matches("a\\*b", "axb"));
}
