//! The harness's `redis-server`: the runner's [`local_runner::redis_process::RedisProcess`]
//! plus what only tests need — a TLS-only server, a server from a configuration file (a
//! Sentinel), and killing and restarting it on the same port (Redis crashing and coming
//! back). Killed on drop, like the runner's.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use local_runner::redis_process::{Options, RedisProcess as Server};
pub use local_runner::redis_process::{answers_ping, redis_server_bin, server_pid};

/// A `redis-server` child of the test, on a free loopback port; it can be stopped and
/// restarted there.
#[derive(Debug)]
pub struct RedisProcess {
    bin: PathBuf,
    port: u16,
    options: Options,
    /// `None` while stopped.
    server: Option<Server>,
}

impl RedisProcess {
    /// Starts `redis-server` on a free port with `--save "" --appendonly no` and waits until
    /// it answers `PING`. `extra_args` are appended (`--requirepass`, `--maxmemory`, ...).
    pub fn start(bin: PathBuf, extra_args: &[&str]) -> std::io::Result<Self> {
        Self::start_with(bin, extra_args, false, None)
    }

    /// Starts `redis-server config_file extra_args...` (e.g. a Sentinel: a writable
    /// `sentinel.conf` and `--sentinel`), on a free port like [`RedisProcess::start`].
    pub fn start_with_config_file(
        bin: PathBuf,
        config_file: PathBuf,
        extra_args: &[&str],
    ) -> std::io::Result<Self> {
        Self::start_with(bin, extra_args, false, Some(config_file))
    }

    /// Starts a TLS-only `redis-server` (`--port 0 --tls-port <free>`); `extra_args` must
    /// name its certificate files (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`).
    pub fn start_tls(bin: PathBuf, extra_args: &[&str]) -> std::io::Result<Self> {
        Self::start_with(bin, extra_args, true, None)
    }

    fn start_with(
        bin: PathBuf,
        extra_args: &[&str],
        tls: bool,
        config_file: Option<PathBuf>,
    ) -> std::io::Result<Self> {
        let options = Options {
            config_file,
            tls,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
        };
        let server = Server::start_with(&bin, &options)?;
        Ok(Self {
            bin,
            port: server.port(),
            options,
            server: Some(server),
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (as a crash would: no shutdown, connections reset).
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts it again on the same port, empty (there is no persistence).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Server::start_on(&self.bin, self.port, &self.options) {
                Ok(server) => {
                    self.server = Some(server);
                    return Ok(());
                }
                // The old socket may linger for a moment.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After a restart the port is served by the new child, not taken for the old one.
    #[test]
    fn a_restarted_server_is_a_new_process_on_the_same_port() {
        let mut redis = crate::start_redis(&["--requirepass", "pw"]);
        let port = redis.port();
        let pid = server_pid(port, Some((None, "pw")));
        assert!(pid.is_some());
        redis.stop();
        assert!(!answers_ping(port), "a stopped server still answers");
        redis.restart().unwrap();
        assert_eq!(redis.port(), port);
        let new_pid = server_pid(port, Some((None, "pw")));
        assert!(
            new_pid.is_some() && new_pid != pid,
            "{pid:?} -> {new_pid:?}"
        );
    }
}
