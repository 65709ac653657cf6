//! `ApiError`: the one error type of every handler, rendered as RFC 9457 problem details.
//!
//! Every variant has one HTTP status. Handlers return `Result<_, ApiError>`, so a failure
//! always becomes an `application/problem+json` response and never an `Err` for the Lambda
//! runtime (API Gateway would turn that into an opaque 502).

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Seconds a client is told to wait (`Retry-After`) when Redis is unavailable.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Extra members of a problem body (RFC 9457 "extension members").
pub type Extensions = Map<String, Value>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request cannot be read (malformed JSON or query string, bad identifier).
    #[error("{detail}")]
    BadRequest {
        /// Human sentence.
        detail: String,
        /// The field or parameter at fault, when there is one.
        field: Option<String>,
    },
    /// 401: `API_KEY` is set and the request did not carry it.
    #[error("this API needs a key: send Authorization: Bearer <key> or X-API-Key: <key>")]
    Unauthorized,
    /// 404: the thing asked for does not exist.
    #[error("{detail}")]
    NotFound {
        /// Human sentence.
        detail: String,
        /// Extra members, e.g. `cache_hit: false`.
        extensions: Extensions,
    },
    /// 405: the path exists, the method does not (`detail` names the ones allowed).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: the resource is in a state that refuses the request (a lock is held).
    #[error("{detail}")]
    Conflict {
        /// Human sentence.
        detail: String,
        /// Extra members, e.g. `retry_after_ms`.
        extensions: Extensions,
    },
    /// 412: a precondition (`If-Match`, `If-None-Match`) does not hold: nothing was changed.
    #[error("{detail}")]
    PreconditionFailed {
        /// Human sentence.
        detail: String,
        /// The header whose condition failed.
        field: String,
        /// Extra members, e.g. `current_etag`.
        extensions: Extensions,
    },
    /// 413: the body is larger than `MAX_BODY_BYTES`.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// 415: the body is not JSON.
    #[error("{detail}")]
    UnsupportedMediaType {
        /// Human sentence.
        detail: String,
    },
    /// 422: the request is well-formed but a value is missing, of the wrong type or out of range.
    #[error("{detail}")]
    Validation {
        /// The field or parameter at fault (`ttl`, `value`, `tasks[3].title`).
        field: String,
        /// Human sentence.
        detail: String,
    },
    /// 429: a rate-limit policy has no room for this request.
    #[error("{detail}")]
    QuotaExceeded {
        /// Human sentence.
        detail: String,
        /// Extra members: `violated-policies` and the decision fields.
        extensions: Extensions,
    },
    /// 503: Redis cannot be reached, timed out or refused for a passing reason.
    #[error("{detail}")]
    Unavailable {
        /// Human sentence, safe for clients.
        detail: String,
        /// Extra members, e.g. `connected: false`.
        extensions: Extensions,
    },
    /// 503: the whole request took longer than `REQUEST_TIMEOUT_MS`. What it was doing may
    /// have been applied.
    #[error(
        "the request took longer than {limit_ms} ms (REQUEST_TIMEOUT_MS): if it changes data, \
         it may have been applied. Retry it with the same Idempotency-Key to get its outcome \
         without applying it twice."
    )]
    RequestTimeout {
        /// The configured limit, ms.
        limit_ms: u64,
    },
    /// 503: the server already handles as many requests as it may (`MAX_IN_FLIGHT_REQUESTS`);
    /// nothing ran, so any request may be retried.
    #[error(
        "the server is handling as many requests as it may; nothing was applied, try again shortly"
    )]
    Overloaded,
    /// 500: a bug or an unexpected Redis answer. Logged; the client gets a generic sentence.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 for `field`.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A 400 for `field`.
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: Some(field.into()),
        }
    }

    /// A 404 with no extra members.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound {
            detail: detail.into(),
            extensions: Extensions::new(),
        }
    }

    /// A 409 with no extra members.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            extensions: Extensions::new(),
        }
    }

    /// A 412 for the header `field`, with no extra members.
    pub fn precondition_failed(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::PreconditionFailed {
            detail: detail.into(),
            field: field.into(),
            extensions: Extensions::new(),
        }
    }

    /// A 429 naming the violated policies (`violated-policies`, as the quota-exceeded
    /// problem type of draft-ietf-httpapi-ratelimit-headers-10, section "Problem Types",
    /// defines it).
    pub fn quota_exceeded(detail: impl Into<String>, violated: Vec<String>) -> Self {
        let mut extensions = Extensions::new();
        extensions.insert("violated-policies".to_owned(), violated.into());
        Self::QuotaExceeded {
            detail: detail.into(),
            extensions,
        }
    }

    /// A 503 with no extra members.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable {
            detail: detail.into(),
            extensions: Extensions::new(),
        }
    }

    /// Adds an extension member (`retry_after_ms`, `cache_hit`, ...) to a 404, 409, 412, 429 or
    /// 503;
    /// other variants have a fixed shape and are returned unchanged. The RFC 9457 members
    /// (`type`, `title`, `status`, `detail`) and `field` cannot be overridden this way.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        const RESERVED: [&str; 5] = ["type", "title", "status", "detail", "field"];
        debug_assert!(!RESERVED.contains(&key), "problem member {key} is reserved");
        if RESERVED.contains(&key) {
            return self;
        }
        if let Self::NotFound { extensions, .. }
        | Self::Conflict { extensions, .. }
        | Self::PreconditionFailed { extensions, .. }
        | Self::QuotaExceeded { extensions, .. }
        | Self::Unavailable { extensions, .. } = &mut self
        {
            extensions.insert(key.to_owned(), value.into());
        }
        self
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::RequestTimeout { .. } | Self::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `type`: a relative URI naming the kind of problem.
    fn problem_type(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "/problems/bad-request",
            Self::Unauthorized => "/problems/unauthorized",
            Self::NotFound { .. } => "/problems/not-found",
            Self::MethodNotAllowed(_) => "/problems/method-not-allowed",
            Self::Conflict { .. } => "/problems/conflict",
            Self::PreconditionFailed { .. } => "/problems/precondition-failed",
            Self::PayloadTooLarge { .. } => "/problems/payload-too-large",
            Self::UnsupportedMediaType { .. } => "/problems/unsupported-media-type",
            Self::Validation { .. } => "/problems/validation-error",
            // The type registered by draft-ietf-httpapi-ratelimit-headers-10 ("Problem Types",
            // "Quota Exceeded"), not one of ours: generic clients may know it.
            Self::QuotaExceeded { .. } => {
                "https://iana.org/assignments/http-problem-types#quota-exceeded"
            }
            Self::Unavailable { .. } => "/problems/redis-unavailable",
            Self::RequestTimeout { .. } => "/problems/request-timeout",
            Self::Overloaded => "/problems/overloaded",
            Self::Internal(_) => "/problems/internal-error",
        }
    }
}

/// The RFC 9457 body (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "/problems/validation-error", "title": "Unprocessable Entity",
    "status": 422, "detail": "ttl must be from 1 to 31536000, got 0", "field": "ttl"}))]
pub struct Problem {
    /// URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Short summary of the kind (the status phrase).
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    /// The human sentence for this occurrence.
    pub detail: String,
    /// The field or parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Extra members (e.g. `retry_after_ms`, `cache_hit`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extensions: Extensions,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let kind = self.problem_type();
        let title = status.canonical_reason().unwrap_or("Error");
        let (detail, field, extensions) = match self {
            Self::BadRequest { detail, field } => (detail, field, Extensions::new()),
            Self::Validation { field, detail } => (detail, Some(field), Extensions::new()),
            Self::NotFound { detail, extensions }
            | Self::Conflict { detail, extensions }
            | Self::QuotaExceeded { detail, extensions } => (detail, None, extensions),
            Self::PreconditionFailed {
                detail,
                field,
                extensions,
            } => (detail, Some(field), extensions),
            Self::Unavailable { detail, extensions } => {
                // `status` is what the template's metric filter counts 503 answers by.
                tracing::warn!(status = 503u16, %detail, "redis unavailable");
                (detail, None, extensions)
            }
            Self::Internal(cause) => {
                // The cause is for operators; the client learns only that it was not its fault.
                tracing::error!(%cause, "internal error");
                (
                    "The server failed to handle this request; it has been logged.".to_owned(),
                    None,
                    Extensions::new(),
                )
            }
            Self::RequestTimeout { .. } => {
                let mut outcome = Extensions::new();
                outcome.insert("outcome".to_owned(), "unknown".into());
                (self.to_string(), None, outcome)
            }
            other => (other.to_string(), None, Extensions::new()),
        };
        let body = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail,
            field,
            extensions,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        // A problem is about a moment (a missing key may exist a second later): never kept by
        // a cache, whatever its status (404, 405, 414 and 501 are heuristically cacheable).
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"redis-cache-api\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

impl From<redis::RedisError> for ApiError {
    /// Connection trouble, time-outs and passing server states (loading, failover, OOM) are
    /// 503s the client may retry; anything else is a bug or a misuse of Redis, hence a 500.
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind as S};
        let e = cause(&e);
        let passing = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                ErrorKind::AuthenticationFailed
                    | ErrorKind::ClusterConnectionNotFound
                    // The Sentinels list no primary that is up: a failover in progress (or,
                    // for good, a wrong REDIS_SENTINEL_MASTER, which start-up reports).
                    | ErrorKind::MasterNameNotFoundBySentinel
                    | ErrorKind::Server(
                        S::BusyLoading | S::TryAgain | S::ClusterDown | S::MasterDown | S::ReadOnly
                    )
            );
        if passing {
            // A reply that never came (time-out, connection dropped with the command sent)
            // says nothing about whether Redis ran the command: tell the client so, and how
            // to retry safely. Everything else here failed before anything ran.
            let unknown = (e.is_timeout() || e.is_connection_dropped() || e.is_io_error())
                && !e.is_connection_refusal();
            let why = if e.is_timeout() {
                "did not answer in time"
            } else if e.kind() == ErrorKind::AuthenticationFailed {
                "refused our credentials"
            } else if e.kind() == ErrorKind::MasterNameNotFoundBySentinel {
                "has no primary right now (failover in progress)"
            } else if e.kind() == ErrorKind::Server(S::ReadOnly) {
                "answered as a read-only replica (a failover in progress, or REDIS_URL names a \
                 replica)"
            } else if unknown {
                "dropped the connection before answering"
            } else {
                "is not reachable"
            };
            if unknown {
                return Self::unavailable(format!(
                    "Redis {why}: if this request changes data, it may have been applied. \
                     Retry it with the same Idempotency-Key to get its outcome without \
                     applying it twice."
                ))
                .with("outcome", "unknown");
            }
            return Self::unavailable(format!(
                "Redis {why}; nothing was applied. Try again shortly."
            ))
            .with("outcome", "not_applied");
        }
        let code = server_code(&e);
        if code.as_deref() == Some("BUSY") {
            return Self::unavailable("Redis is busy running a script; try again shortly.");
        }
        if code.as_deref() == Some("OOM") {
            return Self::unavailable(
                "Redis is out of memory (maxmemory reached); try again later.",
            );
        }
        if code.as_deref() == Some("NOREPLICAS") {
            // min-replicas-to-write: the primary refuses writes until enough replicas are in
            // sync (a replica restarting, a network split), before running anything.
            return Self::unavailable(
                "Redis refused the write: too few replicas in sync (min-replicas-to-write); \
                 nothing was applied. Try again shortly.",
            )
            .with("outcome", "not_applied");
        }
        if let Some(hint) = misconfiguration(&e) {
            return Self::Internal(format!("redis: {e}. {hint}"));
        }
        Self::Internal(format!("redis: {e}"))
    }
}

/// The error a transaction that Redis refused whole (`EXECABORT`) was refused for: that of
/// its first refused command (`OOM`, `READONLY`, `MOVED`...), which, like the transaction,
/// did not run. Any other error is its own cause.
pub fn cause(e: &redis::RedisError) -> redis::RedisError {
    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort)
        && let Some(items) = e.clone().into_server_errors()
        && let Some((_, first)) = items.first()
    {
        return redis::RedisError::from(first.clone());
    }
    e.clone()
}

/// The server's error code (`WRONGTYPE`, `OOM`...), a pipeline's included: its failure (GET +
/// TTL, a MULTI) carries the code in its items.
pub fn server_code(e: &redis::RedisError) -> Option<String> {
    e.code().map(str::to_owned).or_else(|| {
        let items = e.clone().into_server_errors()?;
        items.first().map(|(_, item)| item.code().to_owned())
    })
}

/// What to set when a Redis error says `REDIS_MODE` does not match the servers (for the log
/// line of the 500; `AppState::connect` says it at start where it can).
pub(crate) fn misconfiguration(e: &redis::RedisError) -> Option<&'static str> {
    use redis::{ErrorKind, ServerErrorKind as S};
    let text = e.to_string();
    if matches!(e.kind(), ErrorKind::Server(S::Moved | S::Ask)) {
        Some("The server is a Redis Cluster node: set REDIS_MODE=cluster.")
    } else if text.contains("cluster support disabled") {
        Some("REDIS_MODE=cluster, but the server is not a cluster node: set REDIS_MODE=standalone.")
    } else if e.kind() == ErrorKind::MasterNameNotFoundBySentinel {
        Some(
            "The Sentinels name no primary that is up under REDIS_SENTINEL_MASTER: check the \
             name, or wait for the failover to finish.",
        )
    } else if text.contains("unknown command") && text.contains("SENTINEL") {
        Some(
            "REDIS_SENTINELS must name Sentinel processes (usually port 26379), not Redis servers.",
        )
    } else {
        None
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("json: {e}"))
    }
}
