//! Configuration, read once at start from environment variables.
//!
//! [`Config::from_lookup`] is pure (it takes the lookup function), so tests build configs
//! without touching the process environment; [`Config::from_env`] is the thin wrapper used
//! by every binary. A bad value stops start-up with a [`ConfigError`] that names the variable
//! and says what it accepts.
//!
//! Every setting is one entry of [`SETTINGS`] (variable, default, what it accepts): the
//! local runner builds its flags and `--help` from it, and tests hold the README's Settings
//! table, `template.yaml` and what [`Config::from_lookup`] reads to it. (On Lambda,
//! `SECRETS_ARN` names a Secrets Manager secret whose settings replace the environment's:
//! read by [`crate::secrets`] before this.)
//!
//! In cluster and sentinel mode `REDIS_URL` still gives the scheme (`rediss://` for TLS), the
//! user and password of the data nodes and, for sentinel, the database; its host is one more
//! cluster seed, and is not used in sentinel mode (the Sentinels say where the primary is).

use std::{fmt, time::Duration};

use redis::IntoConnectionInfo;

mod parse;
mod settings;
use parse::{api_key, cors_origins, number, on_off, tls_files, topology};
pub use settings::{SETTINGS, Setting};

/// The Redis URL used when `REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// `HEADER_READ_TIMEOUT_MS` when unset.
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// `MAX_CLIENT_CONNECTIONS` when unset: below the usual soft limit of 1024 open files, so
/// the runner's Redis connections and files still have room.
pub const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 512;

/// `MAX_IN_FLIGHT_REQUESTS` when unset. With `MAX_BODY_BYTES` it bounds the memory request
/// bodies can take at once (256 MiB at the defaults).
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS: usize = 256;

/// Largest TTL a client may ask for, in seconds (one year, as the README's Request parameters say).
pub const MAX_TTL_SECONDS: u64 = 31_536_000;

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    /// Where Redis is. Never log this directly: it may hold a password; use
    /// [`Config::redacted_redis_url`].
    pub redis_url: String,
    /// Whether `REDIS_URL` was given explicitly. The local runner only starts its embedded
    /// `redis-server` when it was not.
    pub redis_url_is_explicit: bool,
    /// Prefix of every key this service reads or writes.
    pub key_prefix: String,
    /// TTL of a cache entry or profile when the request does not give one, in seconds.
    pub default_ttl: u64,
    /// How long one attempt to open a Redis connection may take.
    pub connect_timeout: Duration,
    /// How long one Redis operation may take end to end, waiting for a reconnect included.
    /// Past it the request is answered with a 503.
    pub response_timeout: Duration,
    /// Largest request body accepted, in bytes (413 past it).
    pub max_body_bytes: usize,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// How long the outcome of a request with an `Idempotency-Key` is kept for its retries.
    pub idempotency_ttl: Duration,
    /// When set, every route but `/health` and the docs requires it (`Authorization: Bearer`
    /// or `X-API-Key`). Never log it.
    pub api_key: Option<String>,
    /// TLS material for `rediss://`, read from the files at start.
    pub tls: Option<TlsFiles>,
    /// One Redis, a Redis Cluster, or a primary found through Sentinels (`REDIS_MODE`).
    pub topology: Topology,
    /// Origins whose browser code may call the API (`CORS_ALLOW_ORIGINS`); empty: no CORS
    /// headers at all, and preflight `OPTIONS` stays a 405 like every undeclared method.
    pub cors_allow_origins: Vec<String>,
    /// Runner only: how long a connection may take to deliver a whole request head,
    /// counted from its accept or from its previous answer (idle keep-alive included).
    pub header_read_timeout: Duration,
    /// Runner only: HTTP connections served at once; further ones wait to be accepted.
    pub max_client_connections: usize,
    /// Runner only: requests handled at once; further ones are answered 503 at once.
    pub max_in_flight_requests: usize,
    /// Whether the figures are taken (`METRICS`): the runner's `/metrics`, a function's EMF
    /// lines.
    pub metrics: bool,
}

/// How the service reaches Redis (`REDIS_MODE`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One server at `REDIS_URL` (also a managed primary endpoint such as ElastiCache's).
    Standalone,
    /// A Redis Cluster; the client learns the slot map from these seeds and follows
    /// `MOVED`/`ASK` redirections.
    Cluster {
        /// Seed node URLs (with `REDIS_URL`'s scheme and credentials).
        nodes: Vec<String>,
    },
    /// A primary and replicas watched by Sentinels; the client asks them where the primary
    /// is, and asks again when it fails over.
    Sentinel {
        /// Sentinel URLs.
        sentinels: Vec<String>,
        /// The monitored primary's name (`sentinel monitor <name> ...`).
        master: String,
        /// The Sentinels' password, when they require one (never log it).
        password: Option<String>,
    },
}

impl Topology {
    /// The mode this topology is.
    pub fn mode(&self) -> Mode {
        match self {
            Self::Standalone => Mode::Standalone,
            Self::Cluster { .. } => Mode::Cluster,
            Self::Sentinel { .. } => Mode::Sentinel,
        }
    }

    /// `standalone`, `cluster` or `sentinel`, as `REDIS_MODE` spells it.
    pub fn name(&self) -> &'static str {
        self.mode().name()
    }
}

/// What a Redis server runs as, and what `REDIS_MODE` asks for: the same three words, which
/// Redis reports as `redis_mode` in `INFO server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One server (a primary, or a replica).
    Standalone,
    /// A Redis Cluster node.
    Cluster,
    /// A Redis Sentinel.
    Sentinel,
}

impl Mode {
    /// `standalone`, `cluster` or `sentinel`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
            Self::Sentinel => "sentinel",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The PEM contents of `REDIS_TLS_CA_FILE`, `REDIS_TLS_CERT_FILE` and `REDIS_TLS_KEY_FILE`.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// CA certificate(s) to trust instead of the system roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key, for servers that verify clients.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {expected}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What it was set to (redacted when it is a URL with a password).
    pub value: String,
    /// What it accepts.
    pub expected: String,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any lookup function (`name -> value`). Empty values
    /// count as unset, as a blank line in an `.env` file would suggest.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let explicit_url = get("REDIS_URL");
        let redis_url = explicit_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        if let Err(e) = redis_url.as_str().into_connection_info() {
            return Err(ConfigError {
                variable: "REDIS_URL",
                value: redact_url(&redis_url),
                expected: format!(
                    "a redis:// or rediss:// URL such as redis://user:password@host:6379/0 ({e})"
                ),
            });
        }

        let key_prefix = get("KEY_PREFIX").unwrap_or_else(|| "demo_api:".to_owned());
        // An empty hash tag (`{}`) as the prefix's first would make Redis Cluster hash every
        // key whole, and split the keys a lock or a queue must keep in one slot.
        let empty_tag = key_prefix
            .find('{')
            .is_some_and(|i| key_prefix[i + 1..].starts_with('}'));
        if key_prefix.len() > 128 || key_prefix.chars().any(char::is_whitespace) || empty_tag {
            return Err(ConfigError {
                variable: "KEY_PREFIX",
                value: key_prefix,
                expected:
                    "1 to 128 bytes without whitespace or an empty {} hash tag, e.g. demo_api:"
                        .to_owned(),
            });
        }
        let topology = topology(&get, &redis_url)?;

        Self {
            redis_url,
            redis_url_is_explicit: explicit_url.is_some(),
            key_prefix,
            default_ttl: number(&get, "DEFAULT_TTL", 3600, 1, MAX_TTL_SECONDS)?,
            connect_timeout: Duration::from_millis(number(
                &get,
                "REDIS_CONNECT_TIMEOUT_MS",
                1000,
                1,
                60_000,
            )?),
            response_timeout: Duration::from_millis(number(
                &get,
                "REDIS_RESPONSE_TIMEOUT_MS",
                1000,
                1,
                60_000,
            )?),
            max_body_bytes: number(&get, "MAX_BODY_BYTES", 1 << 20, 1, 64 << 20)?,
            request_timeout: Duration::from_millis(number(
                &get,
                "REQUEST_TIMEOUT_MS",
                28_000,
                100,
                900_000,
            )?),
            idempotency_ttl: Duration::from_secs(number(
                &get,
                "IDEMPOTENCY_TTL_SECS",
                86_400,
                1,
                604_800,
            )?),
            api_key: api_key(get("API_KEY"))?,
            tls: tls_files(&get)?,
            topology,
            cors_allow_origins: cors_origins(get("CORS_ALLOW_ORIGINS"))?,
            header_read_timeout: Duration::from_millis(number(
                &get,
                "HEADER_READ_TIMEOUT_MS",
                DEFAULT_HEADER_READ_TIMEOUT_MS,
                100,
                300_000,
            )?),
            max_client_connections: number(
                &get,
                "MAX_CLIENT_CONNECTIONS",
                DEFAULT_MAX_CLIENT_CONNECTIONS,
                1,
                65_536,
            )?,
            max_in_flight_requests: number(
                &get,
                "MAX_IN_FLIGHT_REQUESTS",
                DEFAULT_MAX_IN_FLIGHT_REQUESTS,
                1,
                65_536,
            )?,
            metrics: on_off(get("METRICS"), "METRICS", true)?,
        }
        .checked()
    }

    /// Rules between settings. A request time limit at or below one Redis call's would cut
    /// requests short while Redis is still expected to answer, and answer "timed out" for
    /// writes that then go through.
    fn checked(self) -> Result<Self, ConfigError> {
        if self.request_timeout <= self.response_timeout {
            return Err(ConfigError {
                variable: "REQUEST_TIMEOUT_MS",
                value: self.request_timeout.as_millis().to_string(),
                expected: format!(
                    "more than REDIS_RESPONSE_TIMEOUT_MS ({} ms)",
                    self.response_timeout.as_millis()
                ),
            });
        }
        Ok(self)
    }

    /// The Redis URL with any password replaced by `***`, safe for logs.
    pub fn redacted_redis_url(&self) -> String {
        redact_url(&self.redis_url)
    }
}

impl fmt::Debug for Config {
    // Hand-written so that the password in REDIS_URL never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("redis_url", &self.redacted_redis_url())
            .field("redis_url_is_explicit", &self.redis_url_is_explicit)
            .field("key_prefix", &self.key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("idempotency_ttl", &self.idempotency_ttl)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("tls_ca", &self.tls.as_ref().is_some_and(|t| t.ca.is_some()))
            .field(
                "tls_client_cert",
                &self.tls.as_ref().is_some_and(|t| t.client.is_some()),
            )
            .field("mode", &self.topology.name())
            .field("cors_allow_origins", &self.cors_allow_origins)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_client_connections", &self.max_client_connections)
            .field("max_in_flight_requests", &self.max_in_flight_requests)
            .field("metrics", &self.metrics)
            .finish()
    }
}

/// Replaces the password of a URL (if any) with `***`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            // set_password only fails for URLs that cannot have one, which this has.
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

/// A lookup over fixed `(name, value)` pairs, for tests of what reads the environment.
#[cfg(test)]
pub(crate) fn lookup_in<'a>(
    pairs: &'a [(&'a str, &'a str)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[cfg(test)]
mod tests;
