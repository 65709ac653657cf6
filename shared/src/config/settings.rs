//! [`SETTINGS`]: every setting of [`Config`], declared once, with its default and what it
//! accepts. The runner's flags and `--help` are built from this list; the tests below hold
//! it to what [`Config::from_lookup`] reads and to the defaults it applies.

#[cfg(doc)]
use super::Config;
use super::DEFAULT_REDIS_URL;

/// One setting the service reads: its environment variable (the runner's flag is the same
/// name in lower case with dashes), its default and what it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The environment variable.
    pub variable: &'static str,
    /// The value used when it is unset, when that is one value (`None`: unset means off, or
    /// something else the description says).
    pub default: Option<&'static str>,
    /// What it accepts and does (the runner's `--help` line).
    pub help: &'static str,
    /// A password or key: its value never appears in `--help` or a log.
    pub secret: bool,
}

const fn setting(
    variable: &'static str,
    default: Option<&'static str>,
    help: &'static str,
) -> Setting {
    Setting {
        variable,
        default,
        help,
        secret: false,
    }
}

const fn secret(variable: &'static str, help: &'static str) -> Setting {
    Setting {
        variable,
        default: None,
        help,
        secret: true,
    }
}

/// Every setting [`Config::from_lookup`] reads, in the README's order. A new setting is one
/// entry here and its parsing in `from_lookup` (a unit test holds the two together).
pub const SETTINGS: &[Setting] = &[
    Setting {
        secret: true,
        ..setting(
            "REDIS_URL",
            Some(DEFAULT_REDIS_URL),
            "Redis URL (redis:// or rediss://, optional user:password@ and /db). Unset: \
             127.0.0.1:6379, or (the runner) a private redis-server when nothing answers there",
        )
    },
    setting(
        "KEY_PREFIX",
        Some("demo_api:"),
        "Prefix of every key: 1 to 128 bytes, no whitespace",
    ),
    setting(
        "DEFAULT_TTL",
        Some("3600"),
        "TTL in seconds when a request gives none, 1..=31536000",
    ),
    setting(
        "REDIS_CONNECT_TIMEOUT_MS",
        Some("1000"),
        "Time allowed to open a Redis connection, ms, 1..=60000",
    ),
    setting(
        "REDIS_RESPONSE_TIMEOUT_MS",
        Some("1000"),
        "Time allowed for one Redis operation, reconnect included, ms, 1..=60000; then 503",
    ),
    setting(
        "MAX_BODY_BYTES",
        Some("1048576"),
        "Largest request body, bytes, 1..=67108864",
    ),
    setting(
        "REQUEST_TIMEOUT_MS",
        Some("28000"),
        "Longest a request may take before it is answered 503, ms, 100..=900000 and more than \
         REDIS_RESPONSE_TIMEOUT_MS (API Gateway stops at 29 s)",
    ),
    setting(
        "IDEMPOTENCY_TTL_SECS",
        Some("86400"),
        "How long the outcome of a request with an Idempotency-Key is kept for its retries, s, \
         1..=604800",
    ),
    setting(
        "CORS_ALLOW_ORIGINS",
        None,
        "Browser origins allowed to call the API (CORS), comma-separated \
         (https://app.example.com), or *. Unset: no CORS headers, and OPTIONS is a 405 like \
         every undeclared method",
    ),
    secret(
        "API_KEY",
        "Require this key (Authorization: Bearer, or X-API-Key) on every route but /health and \
         the docs; 16 to 512 characters. Unset: the API is open",
    ),
    setting(
        "REDIS_TLS_CA_FILE",
        None,
        "PEM file of the CA that signed the Redis server's certificate (rediss://). Unset: \
         the system roots",
    ),
    setting(
        "REDIS_TLS_CERT_FILE",
        None,
        "PEM client certificate for Redis servers that verify clients (mutual TLS), with \
         REDIS_TLS_KEY_FILE",
    ),
    setting("REDIS_TLS_KEY_FILE", None, "PEM key of REDIS_TLS_CERT_FILE"),
    setting(
        "REDIS_MODE",
        Some("standalone"),
        "standalone (one Redis), cluster (Redis Cluster) or sentinel (a primary found through \
         Sentinels)",
    ),
    setting(
        "REDIS_CLUSTER_NODES",
        None,
        "Cluster seed nodes, host:port or URLs, comma-separated. Unset: REDIS_URL",
    ),
    setting(
        "REDIS_SENTINELS",
        None,
        "Sentinels, host:port or URLs, comma-separated (required in sentinel mode)",
    ),
    setting(
        "REDIS_SENTINEL_MASTER",
        Some("mymaster"),
        "Name the Sentinels monitor the primary under",
    ),
    secret(
        "REDIS_SENTINEL_PASSWORD",
        "The Sentinels' own password (their requirepass), when they have one",
    ),
    setting(
        "HEADER_READ_TIMEOUT_MS",
        Some("10000"),
        "Runner only: time a connection has to send a whole request head, from its accept or \
         its previous answer (so also how long an idle keep-alive connection stays open), and \
         the longest a connection may move no byte while none of its requests is handled \
         (then it is asked to close, and dropped after as long again), ms, 100..=300000",
    ),
    setting(
        "MAX_CLIENT_CONNECTIONS",
        Some("512"),
        "Runner only: most HTTP connections open at once; further ones wait in the listen queue \
         until one closes, 1..=65536",
    ),
    setting(
        "MAX_IN_FLIGHT_REQUESTS",
        Some("256"),
        "Runner only: most requests handled at once; further ones get a 503 with Retry-After, \
         1..=65536",
    ),
    setting(
        "METRICS",
        Some("on"),
        "Request and Redis figures: on (the runner serves GET /metrics, a Lambda function \
         writes CloudWatch EMF lines to its log) or off",
    ),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::{cell::RefCell, collections::BTreeSet};

    use super::*;
    use crate::Config;

    #[test]
    fn config_reads_exactly_the_declared_settings() {
        let asked = RefCell::new(BTreeSet::new());
        for mode in ["standalone", "cluster", "sentinel"] {
            let _ = Config::from_lookup(|name| {
                asked.borrow_mut().insert(name.to_owned());
                match name {
                    "REDIS_MODE" => Some(mode.to_owned()),
                    "REDIS_SENTINELS" => Some("127.0.0.1:26379".to_owned()),
                    _ => None,
                }
            });
        }
        let declared: BTreeSet<String> = SETTINGS.iter().map(|s| s.variable.to_owned()).collect();
        assert_eq!(asked.into_inner(), declared);
    }

    #[test]
    fn declared_defaults_are_what_config_applies() {
        let unset = format!("{:?}", Config::from_lookup(|_| None).unwrap());
        for setting in SETTINGS {
            let Some(default) = setting.default else {
                continue;
            };
            let given =
                Config::from_lookup(|name| (name == setting.variable).then(|| default.to_owned()));
            let given = format!("{:?}", given.unwrap()).replace(
                "redis_url_is_explicit: true",
                "redis_url_is_explicit: false",
            );
            assert_eq!(given, unset, "{} = {default}", setting.variable);
        }
    }
}
