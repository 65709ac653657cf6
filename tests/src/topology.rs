//! Multi-node Redis for the scale-out tests, made of real `redis-server` processes on free
//! ports (each a [`RedisProcess`], killed on drop):
//!
//! - [`RedisCluster`]: 3 primaries and 3 replicas joined by `redis-cli --cluster create`;
//! - [`SentinelGroup`]: a primary, its replica and three Sentinels watching them.
//!
//! Both take an optional password (`requirepass`, and `masterauth` so replicas can sync).

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::redis_process::{RedisProcess, redis_server_bin};

/// `redis-cli`: `REDIS_CLI_BIN`, else beside `redis-server`, else on the `PATH`.
pub fn redis_cli_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("REDIS_CLI_BIN") {
        return PathBuf::from(bin);
    }
    redis_server_bin()
        .and_then(|server| server.parent().map(|dir| dir.join("redis-cli")))
        .filter(|cli| cli.is_file())
        .unwrap_or_else(|| PathBuf::from("redis-cli"))
}

fn server_bin() -> PathBuf {
    redis_server_bin().expect(
        "redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER_BIN",
    )
}

/// A file in the temporary directory that no other test (or test process) uses.
fn unique_file(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("api-tests-{}-{n}-{name}", std::process::id()))
}

/// `redis://[:password@]127.0.0.1:port/0`.
fn url(port: u16, password: Option<&str>) -> String {
    match password {
        Some(pw) => format!("redis://:{pw}@127.0.0.1:{port}/0"),
        None => format!("redis://127.0.0.1:{port}/0"),
    }
}

/// Runs one command on the server at `port` (blocking; for set-up and checks).
fn query<T: redis::FromRedisValue>(
    port: u16,
    password: Option<&str>,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(url(port, password))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    cmd.query(&mut conn)
}

/// Polls `ready` every 50 ms until it holds, panicking with `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster of three primaries with one replica each.
pub struct RedisCluster {
    /// The six nodes, in the order given to `redis-cli --cluster create` (the first three
    /// start as primaries).
    pub nodes: Vec<RedisProcess>,
    password: Option<String>,
    files: Vec<PathBuf>,
}

impl RedisCluster {
    /// Starts six cluster-enabled servers, creates the cluster and waits until every node
    /// reports `cluster_state:ok`.
    pub fn start(password: Option<&str>) -> Self {
        let bin = server_bin();
        let mut nodes = Vec::new();
        let mut files = Vec::new();
        for _ in 0..6 {
            let conf = unique_file("nodes.conf");
            let conf_arg = conf.to_string_lossy().into_owned();
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf_arg.as_str(),
                "--cluster-node-timeout",
                "2000",
                // Replicas sync at once rather than after the default 5 s wait for more of
                // them: a replica that never synced refuses to fail over (its data is "too
                // old"), and a test that stops a primary needs the failover.
                "--repl-diskless-sync-delay",
                "0",
            ];
            if let Some(pw) = password {
                args.extend(["--requirepass", pw, "--masterauth", pw]);
            }
            nodes.push(RedisProcess::start(bin.clone(), &args).expect("start a cluster node"));
            files.push(conf);
        }
        let mut create = Command::new(redis_cli_bin());
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())));
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        if let Some(pw) = password {
            create.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = create.output().expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            nodes,
            password: password.map(str::to_owned),
            files,
        };
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every node says `cluster_state:ok` and knows all six nodes.
    pub fn wait_until_ok(&self) {
        for node in &self.nodes {
            wait_until("cluster_state:ok", Duration::from_secs(30), || {
                query::<String>(
                    node.port(),
                    self.password(),
                    redis::cmd("CLUSTER").arg("INFO"),
                )
                .is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:6")
                })
            });
        }
    }

    /// The password, if the cluster has one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The first node's URL (with the password): one seed is enough for a client.
    pub fn url(&self) -> String {
        url(self.nodes[0].port(), self.password())
    }

    /// Every node as `127.0.0.1:port`, comma-separated (for `REDIS_CLUSTER_NODES`).
    pub fn seeds(&self) -> String {
        addresses(&self.nodes)
    }

    /// Runs `redis-cli --cluster <command> <first node> <options>` (e.g. `reshard`).
    pub fn cli(&self, command: &str, options: &[&str]) -> String {
        let mut cli = Command::new(redis_cli_bin());
        cli.args(["--cluster", command])
            .arg(format!("127.0.0.1:{}", self.nodes[0].port()))
            .args(options)
            .arg("--cluster-yes");
        if let Some(pw) = self.password() {
            cli.args(["-a", pw, "--no-auth-warning"]);
        }
        let out = cli.output().expect("run redis-cli --cluster");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "redis-cli --cluster {command}: {text}"
        );
        text
    }

    /// A node's cluster id (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> String {
        query(
            self.nodes[index].port(),
            self.password(),
            redis::cmd("CLUSTER").arg("MYID"),
        )
        .expect("CLUSTER MYID")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        stop_and_clean(&mut self.nodes, &self.files);
    }
}

/// `127.0.0.1:port` of each of `processes`, comma-separated.
fn addresses(processes: &[RedisProcess]) -> String {
    processes
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Stops `processes`, then removes the configuration `files` they rewrite while running
/// (stopped first, so that none writes its file again).
fn stop_and_clean(processes: &mut [RedisProcess], files: &[PathBuf]) {
    for process in processes {
        process.stop();
    }
    for file in files {
        let _ = std::fs::remove_file(file);
    }
}

/// A primary, one replica and three Sentinels (quorum 2) watching them as `mymaster`.
pub struct SentinelGroup {
    /// The primary at start.
    pub primary: RedisProcess,
    /// Its replica (the one a failover promotes).
    pub replica: RedisProcess,
    /// The Sentinels.
    pub sentinels: Vec<RedisProcess>,
    password: Option<String>,
    files: Vec<PathBuf>,
}

impl SentinelGroup {
    /// The name the Sentinels monitor the primary under.
    pub const MASTER: &'static str = "mymaster";

    /// Starts the primary and its replica (waiting for the replica to sync), then three
    /// Sentinels that fail over after 1 s without an answer; waits until each Sentinel knows
    /// the replica and the two other Sentinels (without that, no failover can be agreed).
    pub fn start(password: Option<&str>) -> Self {
        let bin = server_bin();
        let mut auth: Vec<&str> = Vec::new();
        if let Some(pw) = password {
            auth.extend(["--requirepass", pw, "--masterauth", pw]);
        }
        let primary = RedisProcess::start(bin.clone(), &auth).expect("start the primary");
        let primary_port = primary.port().to_string();
        let mut replica_args = vec!["--replicaof", "127.0.0.1", primary_port.as_str()];
        replica_args.extend(&auth);
        let replica = RedisProcess::start(bin.clone(), &replica_args).expect("start the replica");
        wait_until(
            "the replica in sync with the primary",
            Duration::from_secs(30),
            || {
                query::<String>(
                    replica.port(),
                    password,
                    redis::cmd("INFO").arg("replication"),
                )
                .is_ok_and(|info| info.contains("master_link_status:up"))
            },
        );

        let mut sentinels = Vec::new();
        let mut files = Vec::new();
        for _ in 0..3 {
            let conf = unique_file("sentinel.conf");
            let mut text = format!(
                "sentinel monitor {m} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {m} 1000\n\
                 sentinel failover-timeout {m} 5000\n\
                 sentinel parallel-syncs {m} 1\n",
                m = Self::MASTER
            );
            if let Some(pw) = password {
                text.push_str(&format!("sentinel auth-pass {} {pw}\n", Self::MASTER));
            }
            std::fs::write(&conf, text).expect("write sentinel.conf");
            sentinels.push(
                RedisProcess::start_with_config_file(bin.clone(), conf.clone(), &["--sentinel"])
                    .expect("start a sentinel"),
            );
            files.push(conf);
        }
        let group = Self {
            primary,
            replica,
            sentinels,
            password: password.map(str::to_owned),
            files,
        };
        for sentinel in &group.sentinels {
            wait_until(
                "each Sentinel knowing the replica and the other Sentinels",
                Duration::from_secs(30),
                || {
                    let state: HashMap<String, String> = query(
                        sentinel.port(),
                        None,
                        redis::cmd("SENTINEL").arg("MASTER").arg(Self::MASTER),
                    )
                    .unwrap_or_default();
                    state.get("num-other-sentinels").map(String::as_str) == Some("2")
                        && state.get("num-slaves").map(String::as_str) == Some("1")
                },
            );
        }
        group
    }

    /// The Sentinels as `127.0.0.1:port`, comma-separated (for `REDIS_SENTINELS`).
    pub fn sentinel_addresses(&self) -> String {
        addresses(&self.sentinels)
    }

    /// The port of the server the Sentinels currently name as primary.
    pub fn primary_port(&self) -> Option<u16> {
        let (_, port): (String, u16) = query(
            self.sentinels[0].port(),
            None,
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(Self::MASTER),
        )
        .ok()?;
        Some(port)
    }

    /// The password of the data nodes, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        stop_and_clean(&mut self.sentinels, &self.files);
    }
}
