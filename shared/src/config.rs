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

mod settings;
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
    /// Prefix of every key this service reads or writes (the original's `key_prefix`).
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
    /// `standalone`, `cluster` or `sentinel`, as `REDIS_MODE` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster { .. } => "cluster",
            Self::Sentinel { .. } => "sentinel",
        }
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
            .finish()
    }
}

/// Parses an integer variable with a default and an inclusive range.
fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(ConfigError {
            variable,
            value: raw,
            expected: format!("a whole number from {min} to {max} (default {default})"),
        }),
    }
}

/// `API_KEY`: unset, or 16 to 512 characters (shorter keys are too easy to guess).
fn api_key(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(key) if !(16..=512).contains(&key.chars().count()) => Err(ConfigError {
            variable: "API_KEY",
            value: "***".to_owned(),
            expected: "16 to 512 characters (e.g. openssl rand -hex 32)".to_owned(),
        }),
        other => Ok(other),
    }
}

/// `CORS_ALLOW_ORIGINS`: `*`, or origins as a browser sends them in `Origin` (scheme, host,
/// optional port; no path, no trailing slash, which would never match).
fn cors_origins(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let origins: Vec<String> = raw.split(',').map(|o| o.trim().to_owned()).collect();
    let origin_ok = |o: &str| {
        let Some((scheme, rest)) = o.split_once("://") else {
            return false;
        };
        matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    };
    let valid = if origins.iter().any(|o| o == "*") {
        origins.len() == 1
    } else {
        origins.iter().all(|o| origin_ok(o))
    };
    if !valid {
        return Err(ConfigError {
            variable: "CORS_ALLOW_ORIGINS",
            value: raw,
            expected: "* alone, or origins such as https://app.example.com,http://localhost:3000 \
                       (scheme://host[:port], no path)"
                .to_owned(),
        });
    }
    Ok(origins)
}

/// Reads the TLS files named by `REDIS_TLS_*`.
fn tls_files(get: &impl Fn(&str) -> Option<String>) -> Result<Option<TlsFiles>, ConfigError> {
    let read = |variable: &'static str| -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(path) = get(variable) else {
            return Ok(None);
        };
        std::fs::read(&path).map(Some).map_err(|e| ConfigError {
            variable,
            value: path,
            expected: format!("a readable PEM file ({e})"),
        })
    };
    let ca = read("REDIS_TLS_CA_FILE")?;
    let client = match (read("REDIS_TLS_CERT_FILE")?, read("REDIS_TLS_KEY_FILE")?) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError {
                variable: "REDIS_TLS_KEY_FILE",
                value: get("REDIS_TLS_KEY_FILE").unwrap_or_default(),
                expected:
                    "set together with REDIS_TLS_CERT_FILE (a client certificate needs its key)"
                        .to_owned(),
            });
        }
    };
    Ok((ca.is_some() || client.is_some()).then_some(TlsFiles { ca, client }))
}

/// `REDIS_MODE` and the variables of the mode it names.
fn topology(
    get: &impl Fn(&str) -> Option<String>,
    redis_url: &str,
) -> Result<Topology, ConfigError> {
    let mode = get("REDIS_MODE").unwrap_or_else(|| "standalone".to_owned());
    match mode.trim().to_ascii_lowercase().as_str() {
        "standalone" => Ok(Topology::Standalone),
        "cluster" => {
            let base = url::Url::parse(redis_url).ok();
            if base
                .as_ref()
                .is_some_and(|u| !matches!(u.path(), "" | "/" | "/0"))
            {
                return Err(ConfigError {
                    variable: "REDIS_URL",
                    value: redact_url(redis_url),
                    expected: "database 0 (or none) in cluster mode: Redis Cluster has no other"
                        .to_owned(),
                });
            }
            let mut nodes = node_list(get, "REDIS_CLUSTER_NODES", redis_url)?;
            if nodes.is_empty() {
                nodes.push(redis_url.to_owned());
            }
            Ok(Topology::Cluster { nodes })
        }
        "sentinel" => {
            let sentinels = node_list(get, "REDIS_SENTINELS", redis_url)?;
            if sentinels.is_empty() {
                return Err(ConfigError {
                    variable: "REDIS_SENTINELS",
                    value: String::new(),
                    expected: "the Sentinels' addresses in sentinel mode, e.g. \
                               sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
                        .to_owned(),
                });
            }
            Ok(Topology::Sentinel {
                sentinels,
                master: get("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".to_owned()),
                password: get("REDIS_SENTINEL_PASSWORD"),
            })
        }
        _ => Err(ConfigError {
            variable: "REDIS_MODE",
            value: mode,
            expected: "standalone (one Redis), cluster (Redis Cluster) or sentinel (a primary \
                       found through Sentinels)"
                .to_owned(),
        }),
    }
}

/// A comma-separated list of `host:port` or URLs. A bare `host:port` takes `REDIS_URL`'s
/// scheme and, for cluster nodes, its user and password; sentinels get no credentials from
/// it (they have their own, `REDIS_SENTINEL_PASSWORD`).
fn node_list(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    redis_url: &str,
) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(Vec::new());
    };
    let base = url::Url::parse(redis_url).ok();
    let scheme = base.as_ref().map_or("redis", url::Url::scheme);
    let userinfo = match &base {
        Some(u) if variable != "REDIS_SENTINELS" && u.password().is_some() => {
            format!("{}:{}@", u.username(), u.password().unwrap_or_default())
        }
        Some(u) if variable != "REDIS_SENTINELS" && !u.username().is_empty() => {
            format!("{}@", u.username())
        }
        _ => String::new(),
    };
    raw.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let url = if entry.contains("://") {
                entry.to_owned()
            } else {
                format!("{scheme}://{userinfo}{entry}")
            };
            match url.as_str().into_connection_info() {
                Ok(_) if url::Url::parse(&url).is_ok_and(|u| u.port().is_some()) => Ok(url),
                _ => Err(ConfigError {
                    variable,
                    value: redact_url(&url),
                    expected: "comma-separated host:port (or redis:// / rediss:// URLs), each \
                               with its port"
                        .to_owned(),
                }),
            }
        })
        .collect()
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(lookup_in(pairs))
    }

    /// The message of the error `pairs` give, which must name `variable`.
    fn refused(pairs: &[(&str, &str)], variable: &str) -> String {
        let e = with(pairs).unwrap_err();
        assert_eq!(e.variable, variable, "{e}");
        e.to_string()
    }

    #[test]
    fn defaults_mirror_the_original() {
        let c = with(&[]).unwrap();
        assert_eq!(c.redis_url, DEFAULT_REDIS_URL);
        assert!(!c.redis_url_is_explicit);
        assert_eq!(c.key_prefix, "demo_api:");
        assert_eq!(c.default_ttl, 3600);
        assert_eq!(c.max_body_bytes, 1 << 20);
    }

    #[test]
    fn bad_number_names_variable_and_range() {
        let e = refused(&[("DEFAULT_TTL", "0")], "DEFAULT_TTL");
        assert!(e.contains("from 1 to 31536000"), "{e}");
        let e = refused(&[("MAX_BODY_BYTES", "lots")], "MAX_BODY_BYTES");
        assert!(e.starts_with("invalid MAX_BODY_BYTES"), "{e}");
    }

    #[test]
    fn the_request_limit_must_exceed_one_redis_call() {
        let pairs = [
            ("REQUEST_TIMEOUT_MS", "200"),
            ("REDIS_RESPONSE_TIMEOUT_MS", "5000"),
        ];
        let e = refused(&pairs, "REQUEST_TIMEOUT_MS");
        assert!(e.contains("REDIS_RESPONSE_TIMEOUT_MS"), "{e}");
        assert!(with(&[("REQUEST_TIMEOUT_MS", "1001")]).is_ok());
    }

    #[test]
    fn bad_url_is_rejected_and_redacted() {
        let e = refused(&[("REDIS_URL", "http://u:secret@host")], "REDIS_URL");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn tls_and_acl_urls_are_accepted_and_redacted() {
        let c = with(&[("REDIS_URL", "rediss://app:s3cret@cache.example:6380/2")]).unwrap();
        assert!(c.redis_url_is_explicit);
        assert_eq!(
            c.redacted_redis_url(),
            "rediss://app:***@cache.example:6380/2"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn modes_read_their_variables() {
        assert_eq!(with(&[]).unwrap().topology, Topology::Standalone);
        let c = with(&[
            ("REDIS_URL", "rediss://app:pw@seed:7000"),
            ("REDIS_MODE", "cluster"),
            ("REDIS_CLUSTER_NODES", "a:7001, b:7002,redis://c:7003"),
        ])
        .unwrap();
        let Topology::Cluster { nodes } = &c.topology else {
            panic!("{:?}", c.topology)
        };
        assert_eq!(
            nodes,
            &[
                "rediss://app:pw@a:7001",
                "rediss://app:pw@b:7002",
                "redis://c:7003"
            ]
        );
        assert!(!format!("{c:?}").contains("pw"));
        let c = with(&[
            ("REDIS_URL", "redis://seed:7000"),
            ("REDIS_MODE", "Cluster"),
        ])
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Cluster {
                nodes: vec!["redis://seed:7000".into()]
            }
        );
        let c = with(&[
            ("REDIS_URL", "redis://:pw@ignored:6379/3"),
            ("REDIS_MODE", "sentinel"),
            ("REDIS_SENTINELS", "s1:26379,s2:26379"),
        ])
        .unwrap();
        assert_eq!(
            c.topology,
            Topology::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                master: "mymaster".into(),
                password: None,
            }
        );
    }

    #[test]
    fn mode_mistakes_say_what_to_set() {
        let e = refused(&[("REDIS_MODE", "replicated")], "REDIS_MODE");
        assert!(e.contains("cluster"), "{e}");
        refused(&[("REDIS_MODE", "sentinel")], "REDIS_SENTINELS");
        let nodes = [("REDIS_MODE", "cluster"), ("REDIS_CLUSTER_NODES", "nohost")];
        refused(&nodes, "REDIS_CLUSTER_NODES");
        let db = [("REDIS_MODE", "cluster"), ("REDIS_URL", "redis://h:1/2")];
        assert!(refused(&db, "REDIS_URL").contains("database 0"));
        refused(&[("KEY_PREFIX", "app{}:")], "KEY_PREFIX");
    }

    #[test]
    fn prefix_with_whitespace_is_rejected() {
        refused(&[("KEY_PREFIX", "a b")], "KEY_PREFIX");
    }
}
