//! Parsing and checking of the settings that need more than a number: each failure is a
//! [`ConfigError`] naming the variable and what it accepts.

use std::fmt;

use redis::IntoConnectionInfo;

use super::{ConfigError, TlsFiles, Topology, redact_url};

/// Parses an integer variable with a default and an inclusive range.
pub(super) fn number<T>(
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

/// A switch: `on` or `off` (any case), `default` when unset.
pub(super) fn on_off(
    raw: Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match raw.as_deref().map(str::trim) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("on") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(false),
        Some(_) => Err(ConfigError {
            variable,
            value: raw.unwrap_or_default(),
            expected: format!("on or off (default {})", if default { "on" } else { "off" }),
        }),
    }
}

/// `API_KEY`: unset, or 16 to 512 characters (shorter keys are too easy to guess).
pub(super) fn api_key(raw: Option<String>) -> Result<Option<String>, ConfigError> {
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
pub(super) fn cors_origins(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
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
pub(super) fn tls_files(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<TlsFiles>, ConfigError> {
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
pub(super) fn topology(
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
pub(super) fn node_list(
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
