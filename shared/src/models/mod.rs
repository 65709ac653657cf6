//! Request and response bodies, one module per function. Field names are the contract
//! the README and the OpenAPI document state (those of the FastAPI demo this API ports, so
//! its clients keep working).

pub mod cache;
pub mod ids;
mod integral;
pub mod lock;
pub mod queue;
pub mod rate_limit;
pub mod semaphore;
pub mod stats;
pub mod users;

pub use cache::*;

/// `n` and the noun for it in a message: "1 request", "2 requests".
pub fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Converts a Redis `TTL`/`PTTL` answer to `Option`: negative (no expiry, or gone) is `None`.
pub fn ttl_from_redis(ttl: i64) -> Option<u64> {
    u64::try_from(ttl).ok()
}

/// Text a client stored, read even when it is not UTF-8 (redis-rs refuses it as a `String`):
/// its invalid bytes become U+FFFD. A task some other client pushed as raw bytes is then
/// handed out, altered, rather than popped and lost behind a 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText(pub String);

impl redis::FromRedisValue for StoredText {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        match v {
            redis::Value::BulkString(bytes) => {
                Ok(Self(String::from_utf8(bytes).unwrap_or_else(|e| {
                    String::from_utf8_lossy(e.as_bytes()).into_owned()
                })))
            }
            other => String::from_redis_value(other).map(Self),
        }
    }
}

impl std::ops::Deref for StoredText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Reads a JSON document stored by this API, keeping the stored text itself: a cache value
/// or a task is handed back byte for byte (a number is not re-encoded through `f64`, and
/// nothing is parsed into a tree only to be written out again). A value some other client
/// wrote that is not JSON is handed back as a JSON string rather than failing the request.
pub fn raw_json_or_string(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::from_str(text)
        .unwrap_or_else(|_| serde_json::value::to_raw_value(text).unwrap_or_default())
}

/// The schema of an extend body's optional `ttl` under `rule`, for a `holder` ("lock",
/// "permit"); `note` ends the description. An extend sets the time left, which readers
/// would otherwise take for an addition.
pub(crate) fn new_ttl_schema(
    rule: crate::validate::Defaulted<u64>,
    holder: &str,
    note: &str,
) -> utoipa::openapi::schema::ObjectBuilder {
    let crate::validate::Defaulted { bounds, default } = rule;
    bounds.nullable_schema().description(Some(format!(
        "The {holder}'s new time to live, seconds from now, {bounds} (default {default}): it \
         replaces the time left, it is not added to it{note}."
    )))
}

/// For `Option<Option<T>>` fields: absent is `None`, `null` is `Some(None)`, a value is
/// `Some(Some(v))`. Lets a PATCH tell "leave alone" from "remove".
pub(crate) fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// Now, as RFC 3339 UTC with millisecond precision (`2026-11-25T18:04:45.627Z`).
pub fn now_rfc3339() -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let now = time::OffsetDateTime::now_utc();
    now.format(FORMAT)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// A random 128-bit token in hex: lock tokens and claim receipts. Unguessable, so only
/// the one who was given it can release the lock or ack the task.
pub fn random_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1, "request", "requests"), "1 request");
        assert_eq!(counted(0, "request", "requests"), "0 requests");
        assert_eq!(counted(2, "delivery", "deliveries"), "2 deliveries");
    }
}
