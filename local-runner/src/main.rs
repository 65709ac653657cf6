//! `local-runner`: serves every endpoint group on one port (default 127.0.0.1:8002).
//! `local-runner --help` lists every setting; each can be a flag or an environment variable.

use std::{net::IpAddr, process::ExitCode};

use clap::Parser;
use shared::{AppState, Config};

/// Redis Cache API: every function's routes on one local server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8002)]
    port: u16,
    /// Address to bind. Loopback by default; binding elsewhere exposes the API to the network.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Redis URL (redis:// or rediss://, optional user:password@ and /db).
    /// Unset: 127.0.0.1:6379, or a private redis-server when nothing answers there.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Prefix of every key [default: demo_api:].
    #[arg(long, env = "KEY_PREFIX")]
    key_prefix: Option<String>,
    /// TTL in seconds when a request gives none, 1..=31536000 [default: 3600].
    #[arg(long, env = "DEFAULT_TTL")]
    default_ttl: Option<String>,
    /// Most Redis connections this process opens, 1..=10000 [default: 20].
    #[arg(long, env = "MAX_CONNECTIONS")]
    max_connections: Option<String>,
    /// Time allowed to open a Redis connection, ms, 1..=60000 [default: 1000].
    #[arg(long, env = "REDIS_CONNECT_TIMEOUT_MS")]
    redis_connect_timeout_ms: Option<String>,
    /// Time allowed for one Redis operation, reconnect included, ms, 1..=60000 [default: 1000].
    #[arg(long, env = "REDIS_RESPONSE_TIMEOUT_MS")]
    redis_response_timeout_ms: Option<String>,
    /// Largest request body, bytes, 1..=67108864 [default: 1048576].
    #[arg(long, env = "MAX_BODY_BYTES")]
    max_body_bytes: Option<String>,
}

impl Cli {
    /// The settings as `shared::Config` reads them, by environment-variable name.
    fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "REDIS_URL" => self.redis_url.clone(),
            "KEY_PREFIX" => self.key_prefix.clone(),
            "DEFAULT_TTL" => self.default_ttl.clone(),
            "MAX_CONNECTIONS" => self.max_connections.clone(),
            "REDIS_CONNECT_TIMEOUT_MS" => self.redis_connect_timeout_ms.clone(),
            "REDIS_RESPONSE_TIMEOUT_MS" => self.redis_response_timeout_ms.clone(),
            "MAX_BODY_BYTES" => self.max_body_bytes.clone(),
            _ => None,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let cli = Cli::parse();
    let mut config = match Config::from_lookup(|name| cli.lookup(name)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("local-runner: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept alive until the server has drained; dropping it stops the embedded Redis.
    let _embedded = match local_runner::embedded_redis(
        &mut config,
        6379,
        local_runner::redis_process::redis_server_bin(),
    ) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("local-runner: {why}");
            return ExitCode::from(1);
        }
    };
    let redis_url = config.redacted_redis_url();
    let state = match AppState::connect(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("local-runner: cannot reach Redis at {redis_url}: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = std::net::SocketAddr::from((cli.bind, cli.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "local-runner: cannot listen on {addr}: {e} (is another server on it? `lsof -i :{}`)",
                cli.port
            );
            return ExitCode::from(1);
        }
    };
    if !cli.bind.is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback: the API is reachable from the network");
    }
    tracing::info!(%addr, redis = %redis_url, "Redis Cache API listening; docs at http://{addr}/docs");
    let app = local_runner::app(state);
    match local_runner::serve(listener, app, local_runner::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("local-runner: server error: {e}");
            ExitCode::from(1)
        }
    }
}
