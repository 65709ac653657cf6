//! Bodies of the `cache` function.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use utoipa::openapi::schema::ObjectBuilder;

use super::ids::{Glob, Key};
use crate::{
    config::MAX_TTL_SECONDS,
    validate::{Bounds, Defaulted, query_parameters},
};

/// Seconds a cache entry or a profile lives (`ttl`; `DEFAULT_TTL` when absent).
pub const TTL_SECS: Bounds<u64> = Bounds::new(1, MAX_TTL_SECONDS);

/// Keys a listing page holds (`count`), 100 when absent.
pub const PAGE: Defaulted<u32> = Defaulted::new(1, 1000, 100);

/// A listing cursor, 0 (the start) when absent: Redis cursors fit in 63 bits for any real
/// keyspace; the schema says int64.
pub const CURSOR: Defaulted<u64> = Defaulted::new(0, i64::MAX as u64, 0);

query_parameters! {
    /// The schema of a listing's `count` ([`PAGE`]).
    PageParam = PAGE;
    /// The schema of a listing's `cursor` ([`CURSOR`]).
    CursorParam = CURSOR;
}

/// The `ttl` of a body ([`TTL_SECS`]; absent, the configured `DEFAULT_TTL`).
pub(crate) fn body_ttl_schema(then: &str) -> ObjectBuilder {
    TTL_SECS
        .nullable_schema()
        .description(Some(format!("Seconds to live, {TTL_SECS}{then}.")))
}

fn put_ttl_schema() -> ObjectBuilder {
    #[allow(deprecated)] // the derived schemas write `example` too
    body_ttl_schema("; `DEFAULT_TTL` when absent").example(Some(300.into()))
}

/// `POST /cache` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"key": "hello", "value": "world", "ttl": 300}))]
#[serde(deny_unknown_fields)]
pub struct PutEntry {
    // Described by its type.
    #[schema(inline)]
    pub key: Key,
    /// Any JSON value; it comes back exactly as sent: its text is stored as received
    /// (validated, not re-encoded), so `1E2`, `-0` or a 30-digit integer read back byte for
    /// byte.
    #[schema(example = "world", value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    // Seconds to live (described in `put_ttl_schema`).
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = put_ttl_schema)]
    pub ttl: Option<u64>,
}

/// `POST /cache` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryStored {
    /// Human sentence.
    pub message: String,
    /// The key, as sent.
    pub key: String,
    /// The TTL the entry got.
    pub ttl_seconds: u64,
}

/// `GET /cache/{key}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Entry {
    /// The key, as sent.
    pub key: String,
    /// The stored value, as it was sent.
    #[schema(value_type = serde_json::Value)]
    pub value: Box<RawValue>,
    /// Seconds left to live, `null` when the entry never expires.
    pub ttl_seconds: Option<u64>,
}

/// `DELETE /cache/{key}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EntryDeleted {
    /// Human sentence.
    pub message: String,
    /// The key, as sent.
    pub key: String,
}

/// `GET /cache` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Glob matched inside the cache namespace (`*`, `user:*`, `h?llo`).
    #[serde(default)]
    #[param(inline)]
    pub pattern: Glob,
    /// Most keys a page holds. A page stops early (with a non-zero cursor) when
    /// matches are sparse; it never holds more.
    #[serde(default = "default_page")]
    #[param(inline, value_type = PageParam)]
    pub count: u32,
    /// Where to continue: 0 to start, then the `cursor` of the previous page.
    #[serde(default)]
    #[param(inline, value_type = CursorParam)]
    pub cursor: u64,
}

fn default_page() -> u32 {
    PAGE.default
}

/// One key of a listing.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyTtl {
    /// The key, without prefix.
    pub key: String,
    /// Seconds left to live, `null` when it never expires.
    pub ttl_seconds: Option<u64>,
}

/// `GET /cache` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyPage {
    /// The pattern, as asked.
    pub pattern: String,
    /// How many keys this page holds.
    pub count: usize,
    /// The keys of this page.
    pub keys: Vec<KeyTtl>,
    /// Pass it back to get the next page; 0 when the listing is complete.
    pub cursor: u64,
}
