//! Shared library of the Redis Cache API: what every endpoint function (and the local
//! runner that serves them all) uses.
//!
//! - [`config`]: settings from the environment (`REDIS_URL`, `KEY_PREFIX`, `DEFAULT_TTL`,
//!   `REDIS_CONNECT_TIMEOUT_MS`, `REDIS_RESPONSE_TIMEOUT_MS`, `MAX_BODY_BYTES`, ...);
//! - [`state`]: `AppState`, the shared auto-reconnecting Redis handle;
//! - [`error`]: `ApiError`, rendered as RFC 9457 problem+json;
//! - [`extract`]: JSON, query and path extractors whose rejections are `ApiError`s;
//! - [`keys`]: the only place Redis key strings are spelled;
//! - [`models`]: request and response bodies, each rule's constant next to its model, and
//!   the identifiers as validated types ([`models::ids`]: checked as they are read);
//! - [`scripts`]: the Lua scripts (`src/scripts/*.lua`), run by SHA;
//! - [`docs`]: the error answers every OpenAPI operation shares, a function's tag;
//! - [`http`]: fallbacks and layers every router gets;
//! - [`idempotency`]: `Idempotency-Key`: a retried write answers its first outcome;
//! - [`info`]: reading Redis `INFO` text, and the eviction-policy warning;
//! - [`lambda`]: running a router under the Lambda runtime;
//! - [`metrics`]: request and Redis figures, for `/metrics` and CloudWatch EMF lines;
//! - [`lifecycle`]: the process stopping, the invocation's deadline;
//! - [`validate`]: value checks failing with a 422 naming the field, and the JSON Schemas
//!   stating the same rules (from the same constants);
//! - [`telemetry`]: logging set-up for Lambda and for local runs.

pub mod config;
pub mod docs;
pub mod error;
pub mod extract;
pub mod http;
pub mod idempotency;
pub mod info;
pub mod keys;
pub mod lambda;
pub mod lifecycle;
pub mod metrics;
pub mod models;
pub mod query_guard;
pub mod scripts;
pub mod secrets;
pub mod state;
pub mod telemetry;
pub mod validate;

pub use config::Config;
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use idempotency::Idempotency;
pub use state::AppState;
