//! Key naming: the only place a Redis key string is spelled.
//!
//! Every key is `{prefix}{group}:{id}` (`demo_api:cache:hello`). Identifiers from requests
//! are checked by [`identifier`] first (1 to [`MAX_IDENTIFIER_CHARS`] characters). Patterns from requests are only ever
//! appended to the *escaped* namespace, so no pattern can reach outside it: the prefix is
//! matched literally even when it contains glob characters itself.

use std::sync::Arc;

/// Longest identifier (key, user id, resource, queue name) accepted, in characters.
///
/// Counted in characters (Unicode code points), as JSON Schema's `maxLength` counts, so that
/// the OpenAPI document states the rule exactly; 512 characters are at most 2048 bytes.
pub const MAX_IDENTIFIER_CHARS: usize = 512;

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

    /// `{prefix}user:{user_id}`: a profile hash.
    pub fn user(&self, user_id: &str) -> String {
        format!("{}user:{user_id}", self.prefix)
    }

    /// `{prefix}stats:profiles`: hash of the profile cache's `lookups` and `misses` (hits are
    /// the difference), shared by every function instance. Counting lookups rather than hits
    /// lets a hit be read and counted in one round trip: only a miss needs a second command.
    pub fn profile_stats(&self) -> String {
        format!("{}stats:profiles", self.prefix)
    }

    /// `{prefix}ratelimit:{user_id}:{algorithm}:{window}`: one limiter per algorithm and
    /// window length, so changing either starts a fresh count instead of misreading one.
    /// Tagged `{user_id}` for Redis Cluster, as is the caller's index
    /// ([`Keys::rate_limit_index`]): every key of one caller is in one slot, so several
    /// policies and the index are one script, and a reset is one slot's work.
    pub fn rate_limit(&self, algorithm: &str, window_secs: u64, user_id: &str) -> String {
        format!(
            "{}:{algorithm}:{window_secs}",
            tagged(&self.prefix, "ratelimit:", user_id)
        )
    }

    /// `{prefix}ratelimit:{user_id}:index`: sorted set of the caller's limiter keys scored by
    /// when each expires, written by every check, read by the reset. No algorithm is named
    /// `index`, so it cannot collide with a limiter key.
    pub fn rate_limit_index(&self, user_id: &str) -> String {
        format!("{}:index", tagged(&self.prefix, "ratelimit:", user_id))
    }

    /// The lock key `{prefix}lock:{resource}` and its fencing counter
    /// `{prefix}lock:{resource}:fence`. The braces are a Redis Cluster hash tag: the two keys
    /// (used together by one script) land in the same slot (see [`tagged`] for names that
    /// hold braces themselves).
    pub fn lock(&self, resource: &str) -> (String, String) {
        let lock = tagged(&self.prefix, "lock:", resource);
        let fence = format!("{lock}:fence");
        (lock, fence)
    }

    /// `{prefix}lock:{resource}:protected`: the fencing demo's store, a hash of the value and
    /// the fencing token that wrote it. It shares the lock's hash tag, so the write script
    /// can check the token against the fencing counter ([`Keys::lock`]) in one step.
    pub fn lock_protected(&self, resource: &str) -> String {
        format!("{}:protected", tagged(&self.prefix, "lock:", resource))
    }

    /// The three keys of a counting semaphore, all tagged `{name}` for Redis Cluster: the
    /// holders (sorted set of holder tokens scored by expiry, ms), the holders' details
    /// (hash: `permits`, and each holder token's fencing token), and the fencing counter.
    pub fn semaphore(&self, name: &str) -> [String; 3] {
        let base = tagged(&self.prefix, "semaphore:", name);
        [
            base.clone(),
            format!("{base}:info"),
            format!("{base}:fence"),
        ]
    }

    /// The pending list of a queue, the first of [`Keys::queue`] (a plain push needs no other).
    pub fn queue_pending(&self, name: &str) -> String {
        tagged(&self.prefix, "queue:", name)
    }

    /// The eight keys of a queue, all tagged `{name}` for Redis Cluster, in the order the
    /// scripts take them: pending list, processing list, claims hash, leases sorted set,
    /// deliveries hash, final claims set, dead letters list, scheduled sorted set (see
    /// `queue_requeue_expired.lua`).
    pub fn queue(&self, name: &str) -> [String; 8] {
        let base = self.queue_pending(name);
        [
            base.clone(),
            format!("{base}:processing"),
            format!("{base}:claims"),
            format!("{base}:leases"),
            format!("{base}:deliveries"),
            format!("{base}:final"),
            format!("{base}:dead"),
            format!("{base}:scheduled"),
        ]
    }

    /// `{prefix}idem:{tag}:{key}`: the record of an `Idempotency-Key`, for a request whose
    /// effect is on `anchor` (a key this module built). `tag` is a hash tag of `anchor`'s
    /// Redis Cluster slot, so the record and the effect can be one script on a cluster too.
    pub fn idempotency(&self, anchor: &str, key: &str) -> String {
        format!(
            "{}idem:{{{}}}:{key}",
            self.prefix,
            slot_tag(slot(anchor.as_bytes()))
        )
    }

    /// Whether `key` is an idempotency record (see [`Keys::idempotency`]).
    pub fn is_idempotency_record(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.prefix.as_bytes())
            .is_some_and(|rest| rest.starts_with(b"idem:"))
    }

    /// `{prefix}stats:reset`: no key is stored there; it anchors the idempotency record of
    /// `POST /stats/reset` (the record goes in its slot).
    pub fn reset_outcome(&self) -> String {
        format!("{}stats:reset", self.prefix)
    }

    /// A SCAN `MATCH` pattern for every key under the prefix.
    pub fn everything_pattern(&self) -> String {
        format!("{}*", escape_glob(&self.prefix))
    }
}

/// The pattern a key under the prefix belongs to, and the name it was built from (see
/// [`Keys::pattern_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternKey {
    /// One of a queue's keys ([`Keys::queue`]).
    Queue(String),
    /// One of a lock's keys ([`Keys::lock`], [`Keys::lock_protected`]).
    Lock(String),
    /// One of a semaphore's keys ([`Keys::semaphore`]).
    Semaphore(String),
}

/// The groups [`Keys::pattern_of`] recognises, with the suffixes their keys carry after the
/// tagged name ("" for the first key), as [`Keys::queue`], [`Keys::lock`] and
/// [`Keys::semaphore`] build them.
const PATTERN_GROUPS: [(&str, &[&str]); 3] = [
    (
        "queue:",
        &[
            "",
            ":processing",
            ":claims",
            ":leases",
            ":deliveries",
            ":final",
            ":dead",
            ":scheduled",
        ],
    ),
    ("lock:", &["", ":fence", ":protected"]),
    ("semaphore:", &["", ":info", ":fence"]),
];

impl Keys {
    /// The queue, lock or semaphore `key` (a full key, as SCAN returns it) belongs to, or
    /// `None` for any other key. A key is recognised only if building the name's keys gives
    /// it back exactly, so a name holding `:` or braces is never misread.
    pub fn pattern_of(&self, key: &str) -> Option<PatternKey> {
        let rest = key.strip_prefix(&*self.prefix)?;
        PATTERN_GROUPS.iter().find_map(|(group, suffixes)| {
            let tail = rest.strip_prefix(group)?;
            suffixes.iter().find_map(|suffix| {
                let name = untag(tail.strip_suffix(suffix)?)?;
                let built = format!("{}{suffix}", tagged(&self.prefix, group, name));
                (built == key).then(|| match *group {
                    "queue:" => PatternKey::Queue(name.to_owned()),
                    "lock:" => PatternKey::Lock(name.to_owned()),
                    _ => PatternKey::Semaphore(name.to_owned()),
                })
            })
        })
    }
}

/// The name inside a [`tagged`] key's tail (`{name}` or `{#hash}:name`), unchecked.
fn untag(tail: &str) -> Option<&str> {
    if let Some(hashed) = tail.strip_prefix("{#") {
        return hashed.split_once("}:").map(|(_, name)| name);
    }
    tail.strip_prefix('{')?.strip_suffix('}')
}

/// `{prefix}{group}{name}` with `name` as the Redis Cluster hash tag, so that every key
/// built by appending to it lands in the same slot.
///
/// A name with a brace cannot be its own tag (`}x` would give the empty tag `{}`, which
/// Redis ignores, hashing each key whole into different slots). Such a name gets a tag of
/// its FNV-1a hash instead, and follows it: `{prefix}{group}{#0123456789abcdef}:{name}`.
/// Both shapes are unambiguous, so no two names share keys.
fn tagged(prefix: &str, group: &str, name: &str) -> String {
    if name.contains(['{', '}']) {
        let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{prefix}{group}{{#{hash:016x}}}:{name}")
    } else {
        format!("{prefix}{group}{{{name}}}")
    }
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag when it has one (the
/// text between the first `{` and the next `}`, if not empty), else of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % 16384
}

/// A short tag (letters and digits) whose slot is `slot`: the first such string in a fixed
/// enumeration, found once for all 16384 slots (a few milliseconds) at first use.
fn slot_tag(slot: u16) -> &'static str {
    static TAGS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut tags = vec![String::new(); 16384];
        let mut left = tags.len();
        let mut n: u64 = 0;
        while left > 0 {
            let mut tag = Vec::new();
            let mut rest = n;
            loop {
                tag.push(ALPHABET[(rest % 36) as usize]);
                rest /= 36;
                if rest == 0 {
                    break;
                }
            }
            let s = crc16::State::<crc16::XMODEM>::calculate(&tag) % 16384;
            let entry = &mut tags[usize::from(s)];
            if entry.is_empty() {
                *entry = String::from_utf8_lossy(&tag).into_owned();
                left -= 1;
            }
            n += 1;
        }
        tags
    });
    &TAGS[usize::from(slot % 16384)]
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

/// Checks an identifier: 1 to [`MAX_IDENTIFIER_CHARS`] characters. `field` names it in the
/// refusal (`key`, `user_id`, ...). The refusal is only its text: the status depends on
/// where the identifier was read (see [`crate::models::ids`]).
pub fn identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    let chars = value.chars().count();
    if chars > MAX_IDENTIFIER_CHARS {
        return Err(format!(
            "{field} is {chars} characters long; at most {MAX_IDENTIFIER_CHARS} are allowed"
        ));
    }
    Ok(value)
}

/// Characters a path identifier (cache key, user id, lock resource, queue name) may not
/// hold, each with the door that would change it. These identifiers are read back through
/// the URL path, and not every front door hands the path over as the client sent it:
///
/// - An HTTP API decodes the path before the function sees it ("API Gateway decodes
///   URL-encoded request parameters before passing them to your backend integration",
///   <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>):
///   an encoded `/` becomes a separator, an encoded `?` starts the query, an encoded `%`
///   is decoded again by the router.
/// - `lambda_http` then parses that path as a URL (`Url::parse` in its `build_request_uri`):
///   a `#` starts a fragment, which is dropped, a `\` is read as `/`, tabs and line breaks
///   are removed, and `.`/`..` segments are resolved.
/// - `+` means a space to form decoders; proxies and gateways that decode a path that way
///   would read another identifier.
///
/// Everything else (spaces, `:`, `@`, `*`, braces, any non-ASCII letter) survives every
/// door: an HTTP API's decoded path is re-encoded by `lambda_http`, the others keep it
/// encoded and the router decodes it once.
pub const PATH_FORBIDDEN: &[(char, &str)] = &[
    (
        '/',
        "it separates path segments (an HTTP API decodes %2F to /)",
    ),
    (
        '?',
        "it starts the query (an HTTP API decodes %3F to ? and cuts the path there)",
    ),
    (
        '#',
        "it starts a URL fragment, which is dropped (an HTTP API decodes %23 to #)",
    ),
    ('%', "an HTTP API refuses %25 and decodes %252F twice"),
    ('\\', "URL parsers read it as /"),
    ('+', "form decoders read it as a space"),
];

/// JSON Schema `pattern` of a path identifier ([`path_identifier`]): no character of
/// [`PATH_FORBIDDEN`], no control character, and not `.` or `..` (dot segments, which
/// clients and URL parsers resolve away). Spelled without look-ahead, which Rust's regex
/// crate lacks: two characters or fewer must include one that is not a dot.
pub const PATH_IDENTIFIER: &str = r"^(?:[^/?#%\\+\x00-\x1f\x7f]*[^/?#%\\+\x00-\x1f\x7f.][^/?#%\\+\x00-\x1f\x7f]*|[^/?#%\\+\x00-\x1f\x7f]{3,})$";

/// Checks an identifier that is read back through a URL path: [`identifier`]'s length
/// rule, then [`PATH_FORBIDDEN`], control characters and dot segments. The error names
/// the character and why, so a client learns the rule from the first refusal.
pub fn path_identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, String> {
    identifier(field, value)?;
    let refuse = |why: String| Err(why);
    for c in value.chars() {
        if let Some((_, why)) = PATH_FORBIDDEN.iter().find(|(f, _)| *f == c) {
            return refuse(format!(
                "{field} must not contain {c:?}: {why}, so it could not be read back by its \
                 URL on every front door (HTTP API, REST API, Function URL)"
            ));
        }
        if c.is_ascii_control() {
            return refuse(format!(
                "{field} must not contain the control character {c:?}: URL parsers drop or \
                 refuse it"
            ));
        }
    }
    if value == "." || value == ".." {
        return refuse(format!(
            "{field} must not be {value:?}: URL parsers resolve it as a dot segment"
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
        assert_eq!(k.user("u1"), "demo_api:user:u1");
        assert_eq!(k.lock("pay").0, "demo_api:lock:{pay}");
        assert_eq!(k.lock("pay").1, "demo_api:lock:{pay}:fence");
        assert_eq!(k.lock_protected("pay"), "demo_api:lock:{pay}:protected");
        assert_eq!(k.semaphore("db")[0], "demo_api:semaphore:{db}");
        assert_eq!(k.semaphore("db")[2], "demo_api:semaphore:{db}:fence");
        assert_eq!(k.queue("tasks")[0], "demo_api:queue:{tasks}");
        assert_eq!(k.queue("tasks")[3], "demo_api:queue:{tasks}:leases");
        assert_eq!(
            k.rate_limit("fixed_window", 60, "u"),
            "demo_api:ratelimit:{u}:fixed_window:60"
        );
        assert_eq!(k.rate_limit_index("u"), "demo_api:ratelimit:{u}:index");
        assert_eq!(
            slot(k.rate_limit("gcra", 1, "u{x").as_bytes()),
            slot(k.rate_limit_index("u{x").as_bytes())
        );
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        let k = Keys::new("a*[b]?\\:");
        assert_eq!(k.cache_pattern("*"), "a\\*\\[b\\]\\?\\\\:cache:*");
        assert_eq!(k.everything_pattern(), "a\\*\\[b\\]\\?\\\\:*");
    }

    #[test]
    fn idempotency_records_share_their_anchors_slot() {
        let k = Keys::new("demo_api:");
        // Known slots (CLUSTER KEYSLOT): "foo" 12182, "{user1000}.following" 3443.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), 3443);
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"));
        for anchor in [
            k.cache("hello"),
            k.cache("a}b{c"),
            k.cache("{x}"),
            k.user("u1"),
            k.lock("pay").0,
            k.lock_protected("p}a{y"),
            k.semaphore("d{b}")[1].clone(),
            k.queue("t{a}sks")[0].clone(),
        ] {
            let record = k.idempotency(&anchor, "key-1{}");
            assert!(record.starts_with("demo_api:idem:{"), "{record}");
            assert_eq!(slot(record.as_bytes()), slot(anchor.as_bytes()), "{anchor}");
        }
    }

    #[test]
    fn path_identifiers_refuse_what_a_front_door_changes() {
        let re = regex::Regex::new(PATH_IDENTIFIER).unwrap();
        for ok in [
            "hello", "user:1", "a b", "ü", "*", "{x}", "a.b", "...", ".a", "a@b;c=d",
        ] {
            assert!(path_identifier("key", ok).is_ok(), "{ok}");
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "a/b", "a?b", "a#b", "a%2Fb", "a\\b", "a+b", "a\nb", "a\tb", "\x7f", ".", "..",
        ] {
            let e = path_identifier("key", bad).unwrap_err();
            assert!(e.starts_with("key must not"), "{bad}: {e}");
            assert!(!re.is_match(bad), "{bad}");
        }
        assert!(path_identifier("key", "a/b").unwrap_err().contains("'/'"));
    }

    #[test]
    fn pattern_keys_give_back_their_names() {
        use super::PatternKey::{Lock, Queue, Semaphore};
        let keys = Keys::new("p:");
        for name in ["jobs", "a:dead", "x}", "{y}:dead", "a{b"] {
            for key in keys.queue(name) {
                assert_eq!(keys.pattern_of(&key), Some(Queue(name.into())), "{key}");
            }
            let (lock, fence) = keys.lock(name);
            for key in [lock, fence, keys.lock_protected(name)] {
                assert_eq!(keys.pattern_of(&key), Some(Lock(name.into())), "{key}");
            }
            for key in keys.semaphore(name) {
                assert_eq!(keys.pattern_of(&key), Some(Semaphore(name.into())), "{key}");
            }
        }
        for other in [
            keys.cache("queue:{x}"),
            keys.user("u"),
            keys.rate_limit("gcra", 60, "u"),
            "q:queue:{jobs}".to_owned(),
            "p:queue:{jobs}:other".to_owned(),
            "p:queue:{#0000000000000000}:x}".to_owned(),
        ] {
            assert_eq!(keys.pattern_of(&other), None, "{other}");
        }
    }

    #[test]
    fn identifiers_are_bounded() {
        assert!(identifier("key", "").is_err());
        assert!(identifier("key", &"x".repeat(512)).is_ok());
        assert!(identifier("key", &"x".repeat(513)).is_err());
    }
}
