//! Start-up checks of [`AppState::connect`]: Redis answers, accepts the credentials, and is
//! what `REDIS_MODE` says (a cluster node answers `MOVED` to half the keys; a Sentinel stores
//! no data). Each failure says, in one line, what to set. The server's mode is read from
//! `INFO server` with the one `INFO` parser ([`crate::info`]).

use redis::{ErrorKind, RedisError};

use super::{AppState, certificates};
use crate::{
    config::{Config, Mode, Topology},
    info::Info,
};

impl AppState {
    /// Builds the state and checks that Redis answers a `PING`, so that a server can say at
    /// start-up, in one clear line, that Redis is missing or refuses the credentials.
    ///
    /// It also checks that the server is what `REDIS_MODE` says (a cluster node answers
    /// `MOVED` to half the keys; a Sentinel stores no data) and fails with what to set.
    pub async fn connect(config: Config) -> Result<Self, RedisError> {
        let state = Self::new(config)?;
        let mut redis = state.redis.clone();
        let wanted = state.config.topology.mode();
        if let Err(e) = redis.ping().await {
            if e.kind() == ErrorKind::AuthenticationFailed
                && let Some(refusal) = credentials_refusal(&state.config).await
            {
                // The client library reports only "Password authentication failed"; the
                // server's own words (WRONGPASS, or NOPASS, ...) say which part is wrong.
                return Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Redis refused the credentials",
                    refusal,
                )));
            }
            let hint = match crate::error::misconfiguration(&e) {
                Some(hint) => Some(hint.to_owned()),
                // A cluster client that found no cluster: say what the seed is instead.
                None if wanted == Mode::Cluster => seed_mode(&state.config).await.map(|mode| {
                    format!("the seed node runs as {mode}, not cluster: set REDIS_MODE={mode}")
                }),
                None => None,
            };
            return Err(match hint {
                Some(hint) => RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "Redis is not what REDIS_MODE expects",
                    format!("{e}. {hint}"),
                )),
                None => e,
            });
        }
        // INFO describes one server, so it goes to each primary: sent to a cluster as a plain
        // command, the client fans it out and answers a map of node -> text, not one text.
        let infos: Vec<String> = redis
            .on_each_primary(redis::cmd("INFO").arg("server"))
            .await?;
        let server_mode = infos
            .first()
            .map_or(Mode::Standalone, |text| Info::parse(text).mode());
        let mismatch = match (wanted, server_mode) {
            (Mode::Standalone | Mode::Sentinel, Mode::Cluster) => Some(
                "the server is a Redis Cluster node: set REDIS_MODE=cluster (and \
                 REDIS_CLUSTER_NODES to some of its nodes)",
            ),
            (_, Mode::Sentinel) => Some(
                "the server is a Redis Sentinel, which stores no data: set REDIS_MODE=sentinel, \
                 REDIS_SENTINELS to the Sentinels and REDIS_SENTINEL_MASTER to the name they \
                 monitor",
            ),
            _ => None,
        };
        if let Some(hint) = mismatch {
            return Err(RedisError::from((
                ErrorKind::InvalidClientConfig,
                "REDIS_MODE does not match the server",
                format!("REDIS_MODE={wanted}, but {hint}"),
            )));
        }
        Ok(state)
    }
}

/// What the first cluster seed runs as, asked over a plain connection (`None` when it
/// cannot be asked either, or is a cluster node after all).
async fn seed_mode(config: &Config) -> Option<Mode> {
    let Topology::Cluster { nodes } = &config.topology else {
        return None;
    };
    let seed = nodes.first()?.as_str();
    let client = match &config.tls {
        Some(tls) => redis::Client::build_with_tls(seed, certificates(tls)).ok()?,
        None => redis::Client::open(seed).ok()?,
    };
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(Info::parse(&info).mode())
    };
    tokio::time::timeout(config.response_timeout, ask)
        .await
        .ok()
        .flatten()
        .filter(|mode| *mode != Mode::Cluster)
}

/// What the server answers to the URL's `AUTH` itself (`WRONGPASS invalid username-password
/// pair or user is disabled.`), asked over a connection without credentials; `None` when it
/// cannot be asked (not standalone, or no connection).
async fn credentials_refusal(config: &Config) -> Option<String> {
    if config.topology != Topology::Standalone {
        return None;
    }
    let mut url = url::Url::parse(config.redis_url.as_str()).ok()?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = decode(url.password()?);
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    let client = match &config.tls {
        Some(tls) => redis::Client::build_with_tls(url.as_str(), certificates(tls)).ok()?,
        None => redis::Client::open(url.as_str()).ok()?,
    };
    let mut auth = redis::cmd("AUTH");
    if !user.is_empty() {
        auth.arg(&user);
    }
    auth.arg(&password);
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        match auth.query_async::<()>(&mut conn).await {
            Ok(()) => None,
            Err(e) => Some(
                [e.code(), e.detail()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    };
    tokio::time::timeout(config.response_timeout, ask)
        .await
        .ok()
        .flatten()
        .filter(|reply| !reply.is_empty())
}
