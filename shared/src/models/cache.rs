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

/// How long the value took to compute, ms (`compute_ms` of a write): XFetch's delta. Up to an
/// hour; a value that takes longer is not a cache's business.
pub const COMPUTE_MS: Bounds<u64> = Bounds::new(0, 3_600_000);

/// XFetch's β (`beta` of a read): how early a refresh is recommended. 1 is the paper's
/// optimum for most loads, 0 never recommends one before expiry, above 1 recommends earlier.
pub const XFETCH_BETA: Defaulted<f64> = Defaulted::new(0.0, 100.0, 1.0);

query_parameters! {
    /// The schema of a listing's `count` ([`PAGE`]).
    PageParam = PAGE;
    /// The schema of a listing's `cursor` ([`CURSOR`]).
    CursorParam = CURSOR;
    /// The schema of a read's `beta` ([`XFETCH_BETA`]).
    BetaParam = XFETCH_BETA;
}

/// What `If-Match` and `If-None-Match` accept (RFC 9110 §13.1.1): `*`, or entity tags
/// (`"..."`, weak `W/"..."`) separated by commas. A value outside it is a 400 naming the header.
pub const ENTITY_TAGS: &str = r#"^\s*(\*|(W/)?"[!#-~]*"(\s*,\s*(W/)?"[!#-~]*")*)\s*$"#;

/// The schema of an `If-Match` / `If-None-Match` header ([`ENTITY_TAGS`]).
pub struct EntityTags;

impl utoipa::PartialSchema for EntityTags {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(ENTITY_TAGS))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for EntityTags {}

/// The preconditions of `POST /cache` (documentation only: the cache function parses them).
/// No `example`: the interactive docs would fill it in on "Try it out" and every try would be
/// a 412.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct WritePreconditions {
    /// Write only if the entry's current ETag is one of these (strong comparison), or `*`:
    /// only if it exists.
    #[param(rename = "If-Match", inline, value_type = EntityTags, required = false)]
    pub if_match: Option<String>,
    /// `*`: write only if the key does not exist; entity tags: only if the current ETag is
    /// none of them.
    #[param(rename = "If-None-Match", inline, value_type = EntityTags, required = false)]
    pub if_none_match: Option<String>,
}

/// The preconditions of `GET /cache/{key}` (documentation only, as [`WritePreconditions`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct ReadPreconditions {
    /// Entity tags (or `*`): 304 Not Modified when the entry's is among them (weak comparison).
    #[param(rename = "If-None-Match", inline, value_type = EntityTags, required = false)]
    pub if_none_match: Option<String>,
    /// Entity tags (or `*`): 412 unless the entry's is among them (strong comparison).
    #[param(rename = "If-Match", inline, value_type = EntityTags, required = false)]
    pub if_match: Option<String>,
}

fn compute_ms_schema() -> ObjectBuilder {
    #[allow(deprecated)] // the derived schemas write `example` too
    COMPUTE_MS
        .nullable_schema()
        .description(Some(format!(
            "How long the value took to compute, ms ({COMPUTE_MS}): reads then say when a \
             refresh is due early (`refresh_recommended`, XFetch). Absent: reads never say so."
        )))
        .example(Some(250.into()))
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
    // Described in `compute_ms_schema`.
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = compute_ms_schema)]
    pub compute_ms: Option<u64>,
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
    /// The `compute_ms` the entry was written with; absent when the write gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_ms: Option<u64>,
    /// XFetch (entries written with `compute_ms` only): `true` tells this one reader to
    /// recompute the value now, before it expires, so that the many readers of a hot key do
    /// not all recompute it at expiry. The probability rises as expiry nears:
    /// `exp(-ttl_ms / (compute_ms × beta))`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_recommended: Option<bool>,
}

/// `GET /cache/{key}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// XFetch's β for `refresh_recommended`: 1 by default, 0 never early, more is earlier.
    #[serde(default = "default_beta")]
    #[param(inline, value_type = BetaParam)]
    pub beta: f64,
}

fn default_beta() -> f64 {
    XFETCH_BETA.default
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
