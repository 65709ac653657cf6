//! `local-runner`: serves every endpoint group on one port (default 127.0.0.1:8002), or
//! walks the demo tour (`local-runner demo`). `local-runner --help` lists every setting;
//! each can be a flag or an environment variable.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use local_runner::{redis_process::RedisProcess, settings::Settings};
use shared::{AppState, Config};

/// jemalloc instead of the system allocator: glibc's malloc and free are costly under many
/// concurrent connections (the README's Benchmarks section has the measurements). The Lambda
/// functions keep the system allocator: one request at a time, and a smaller binary.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Redis Cache API: every function's routes on one local server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8002)]
    port: u16,
    /// Address to bind: an IP address or a host name (`localhost`), resolved at start.
    /// Loopback by default; binding elsewhere exposes the API to the network.
    #[arg(long, env = "BIND", default_value = "127.0.0.1")]
    bind: String,
    /// The shared settings (`REDIS_URL`, `KEY_PREFIX`, ...): one flag each, built from
    /// `shared::config::SETTINGS`.
    #[command(flatten)]
    settings: Settings,
    /// Port on 127.0.0.1 where a Redis is looked for when REDIS_URL is unset; when none
    /// answers there, a private redis-server is started.
    #[arg(long, env = "DEFAULT_REDIS_PORT", default_value_t = 6379)]
    default_redis_port: u16,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (what running with no command does).
    Serve,
    /// Walk through every Redis pattern, printing each request and its answer.
    Demo {
        /// The API to tour, e.g. http://127.0.0.1:8002. Without it, the tour starts an API
        /// of its own and a redis-server of its own, both on free ports, for the duration:
        /// it never touches REDIS_URL's Redis or the one on 6379.
        #[arg(long)]
        url: Option<String>,
        /// The API key of the API to tour (sent as `Authorization: Bearer`); with no --url,
        /// the private API requires it too.
        #[arg(long = "api-key", env = "API_KEY", hide_env_values = true)]
        api_key: Option<String>,
    },
}

/// Why the process stops early: a message and an exit code.
struct Fatal(String, u8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // This thread's runtime is single-threaded: the server adds one thread per CPU, each
    // with a runtime of its own (`local_runner::shards`).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("local-runner: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(&cli))
}

async fn run(cli: &Cli) -> ExitCode {
    let result = match &cli.command {
        None | Some(Command::Serve) => {
            shared::telemetry::init();
            serve(cli).await
        }
        Some(Command::Demo { url, api_key }) => {
            // The tour's own output is the point: keep request logs out of it.
            shared::telemetry::init_with_default("warn");
            // `demo --api-key`, else the top-level `--api-key` (both also read API_KEY).
            let key = api_key.clone().or_else(|| cli.settings.lookup("API_KEY"));
            demo(cli, url.as_deref(), key.as_deref()).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fatal(why, code)) => {
            eprintln!("local-runner: {why}");
            ExitCode::from(code)
        }
    }
}

/// Reads the settings, starts the embedded Redis when needed and connects.
async fn connect(cli: &Cli) -> Result<(AppState, Option<RedisProcess>), Fatal> {
    let mut config = Config::from_lookup(|name| cli.settings.lookup(name))
        .map_err(|e| Fatal(e.to_string(), 2))?;
    let embedded = local_runner::embedded_redis(
        &mut config,
        cli.default_redis_port,
        local_runner::redis_process::redis_server_bin(),
    )
    .map_err(|why| Fatal(why, 1))?;
    let redis_url = config.redacted_redis_url();
    tracing::debug!(redis = %redis_url, mode = config.topology.name(), "connecting to Redis");
    let state = AppState::connect(config)
        .await
        .map_err(|e| Fatal(format!("cannot reach Redis at {redis_url}: {e}"), 1))?;
    if let Some(warning) = state.redis.clone().eviction_warning().await {
        tracing::warn!("{warning}");
    }
    Ok((state, embedded))
}

async fn serve(cli: &Cli) -> Result<(), Fatal> {
    // `_embedded` lives until the server has drained; dropping it stops the embedded Redis.
    let addr = resolve_bind(&cli.bind, cli.port).await?;
    let (state, _embedded) = connect(cli).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Fatal(
            format!(
                "cannot listen on {addr}: {e} (is another server on it? `lsof -i :{}`; or pick another port: `PORT=8003 scripts/run.sh`)",
                cli.port
            ),
            1,
        )
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond loopback: the API is reachable from the network");
    }
    let (redis, mode) = (state.config.redacted_redis_url(), state.redis.mode());
    let threads = local_runner::shards::threads();
    let running = local_runner::shards::start(state, listener, threads)
        .await
        .map_err(|why| Fatal(why, 1))?;
    tracing::info!(%addr, %redis, mode, threads, "Redis Cache API listening; docs at http://{addr}/docs, dashboard at http://{addr}/dashboard");
    // Stopping: work in flight that holds something (the lock demo) gives it back, then
    // every thread drains.
    running
        .serve(local_runner::shutdown_signal())
        .await
        .map_err(|e| Fatal(format!("server error: {e}"), 1))?;
    tracing::info!("stopped");
    Ok(())
}

/// The address `BIND` names, with `PORT`: an IP address as it is, a host name resolved
/// (its first IPv4 address, else its first; `localhost` is loopback). An unresolvable name stops
/// start-up with a message naming the setting.
async fn resolve_bind(bind: &str, port: u16) -> Result<SocketAddr, Fatal> {
    let host = bind.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::from((ip, port)));
    }
    let unresolved = |why: String| {
        Fatal(
            format!("BIND={bind:?} is neither an IP address nor a host name that resolves: {why}"),
            2,
        )
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unresolved(e.to_string()))?
        .collect();
    // IPv4 first when the name has both (`localhost`: 127.0.0.1 and ::1), as the default is.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| unresolved("it resolves to no address".to_owned()))
}

async fn demo(cli: &Cli, url: Option<&str>, api_key: Option<&str>) -> Result<(), Fatal> {
    let mut out = anstream::stdout();
    if let Some(url) = url {
        return local_runner::demo::run(url, local_runner::demo::Api::Running, api_key, &mut out)
            .await
            .map_err(|why| Fatal(why, 1));
    }
    // A private Redis, always: the tour writes keys and resets the prefix, so it must not
    // run against the Redis REDIS_URL names or the one on the default port.
    let bin = local_runner::redis_process::redis_server_bin()
        .ok_or_else(|| Fatal(local_runner::redis_process::HOW_TO_GET_REDIS.to_owned(), 1))?;
    let redis = local_runner::redis_process::RedisProcess::start(bin.clone(), &[])
        .map_err(|e| Fatal(format!("could not start {}: {e}", bin.display()), 1))?;
    let redis_url = redis.url();
    // The other settings as given (prefix, TTL, time-outs), but none that would point the
    // API at another Redis.
    let config = shared::Config::from_lookup(|name| match name {
        "REDIS_URL" => Some(redis_url.clone()),
        "API_KEY" => api_key.map(str::to_owned),
        "REDIS_MODE"
        | "REDIS_CLUSTER_NODES"
        | "REDIS_SENTINELS"
        | "REDIS_SENTINEL_MASTER"
        | "REDIS_SENTINEL_PASSWORD"
        | "REDIS_TLS_CA_FILE"
        | "REDIS_TLS_CERT_FILE"
        | "REDIS_TLS_KEY_FILE" => None,
        _ => cli.settings.lookup(name),
    })
    .map_err(|e| Fatal(e.to_string(), 2))?;
    let state = AppState::connect(config).await.map_err(|e| {
        Fatal(
            format!("cannot reach the tour's own Redis at {redis_url}: {e}"),
            1,
        )
    })?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| Fatal(format!("cannot listen: {e}"), 1))?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| Fatal(e.to_string(), 1))?
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(local_runner::serve(
        listener,
        local_runner::app(state),
        async {
            let _ = stopped.await;
        },
    ));
    let result =
        local_runner::demo::run(&base, local_runner::demo::Api::Own, api_key, &mut out).await;
    let _ = stop.send(());
    let _ = server.await;
    // Dropping `redis` stops the tour's redis-server.
    drop(redis);
    result.map_err(|why| Fatal(why, 1))
}
