//! Bodies of the counting semaphore (served by the `lock` function).

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::ObjectBuilder;

use super::ids::Token;
use crate::validate::{Bounds, Defaulted, query_parameters};

/// How many holders a semaphore admits at once (`permits`, required). The bound also
/// bounds the scripts' work: a semaphore never has more holders than its permits.
pub const SEMAPHORE_PERMITS: Bounds<u64> = Bounds::new(1, 1000);

/// A permit's time to live, seconds (`ttl` of acquire and extend): at most one day, 30 s
/// when absent.
pub const SEMAPHORE_TTL_SECS: Defaulted<u64> = Defaulted::new(1, 86_400, 30);

query_parameters! {
    /// The schema of `ttl` ([`SEMAPHORE_TTL_SECS`]).
    SemaphoreTtlParam = SEMAPHORE_TTL_SECS;
}

/// The schema of `permits` ([`SEMAPHORE_PERMITS`]; required, so no default).
pub struct PermitsParam;

impl utoipa::PartialSchema for PermitsParam {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        SEMAPHORE_PERMITS.schema().build().into()
    }
}

impl utoipa::ToSchema for PermitsParam {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("PermitsParam")
    }
}

/// `POST /semaphore/{name}/acquire` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SemaphoreAcquireQuery {
    /// How many holders the semaphore admits at once. While anyone holds a permit, the
    /// semaphore keeps the count its holders were granted with: another count is a 409.
    #[param(inline, value_type = PermitsParam)]
    pub permits: u64,
    /// The permit's TTL in seconds: a holder that dies frees it after this long.
    #[serde(default = "default_ttl")]
    #[param(inline, value_type = SemaphoreTtlParam)]
    pub ttl: u64,
}

fn default_ttl() -> u64 {
    SEMAPHORE_TTL_SECS.default
}

/// `POST /semaphore/{name}/acquire` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SemaphoreGrant {
    /// The semaphore.
    pub name: String,
    /// The holder's secret: needed to extend or release the permit.
    pub token: String,
    /// Strictly increasing per semaphore: names this holder in `GET /semaphore/{name}`.
    pub fencing_token: u64,
    /// How many holders the semaphore admits.
    pub permits: u64,
    /// Permits still free after this grant.
    pub permits_left: u64,
    /// Milliseconds until the permit expires unless extended (on a replay: as it is now).
    pub ttl_ms: u64,
    /// When the permit expires unless extended: Unix time in ms, by Redis's clock.
    pub expires_at_ms: u64,
}

/// `POST /semaphore/{name}/extend` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendPermit {
    // Described by its type.
    #[schema(inline)]
    pub token: Token,
    // The permit's new time to live (described in `extend_ttl_schema`).
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = extend_ttl_schema)]
    pub ttl: Option<u64>,
}

/// `ExtendPermit::ttl`: [`SEMAPHORE_TTL_SECS`].
fn extend_ttl_schema() -> ObjectBuilder {
    super::new_ttl_schema(SEMAPHORE_TTL_SECS, "permit", "")
}

/// `POST /semaphore/{name}/release` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasePermit {
    // Described by its type.
    #[schema(inline)]
    pub token: Token,
}

/// Answer of extend and release.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PermitChanged {
    /// Human sentence.
    pub message: String,
    /// The semaphore.
    pub name: String,
    /// Milliseconds the permit has left (`null` after a release).
    pub ttl_ms: Option<u64>,
    /// When the permit expires: Unix ms, Redis's clock (`null` after a release).
    pub expires_at_ms: Option<u64>,
}

/// One holder of a semaphore, as `GET /semaphore/{name}` shows it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SemaphoreHolder {
    /// The fencing token of its grant (the holder's token is a secret and not shown).
    pub fencing_token: u64,
    /// Milliseconds until its permit expires unless extended.
    pub ttl_ms: u64,
    /// When its permit expires unless extended: Unix time in ms, by Redis's clock.
    pub expires_at_ms: u64,
}

/// `GET /semaphore/{name}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SemaphoreStatus {
    /// The semaphore.
    pub name: String,
    /// How many holders it admits; `null` when nobody holds a permit (the next acquire
    /// sets it).
    pub permits: Option<u64>,
    /// Permits free now; `null` when nobody holds one.
    pub permits_left: Option<u64>,
    /// The live holders, soonest to expire first.
    pub holders: Vec<SemaphoreHolder>,
}
