//! A private `redis-server` child process on a free loopback port, with no persistence.
//!
//! The runner uses it as its embedded default (no `REDIS_URL` and nothing at the default
//! address); the test harness uses it for a fresh Redis per test. The process is killed
//! when the value is dropped, so no test or runner leaves one behind.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// Where to find `redis-server`: `REDIS_SERVER_BIN`, else `redis-server` on the `PATH`.
pub fn redis_server_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    })
}

/// What to tell a user who has no `redis-server` at all.
pub const HOW_TO_GET_REDIS: &str = "no Redis answers at the default address and no \
redis-server binary was found to start one. Install one (Debian/Ubuntu: sudo apt-get install \
redis-server; macOS: brew install redis), or start one with Docker: docker compose -f \
docker-compose.redis.yml up -d; or set REDIS_URL to a Redis you have.";

/// A running `redis-server` child, killed on drop.
#[derive(Debug)]
pub struct RedisProcess {
    bin: PathBuf,
    port: u16,
    extra_args: Vec<String>,
    tls: bool,
    config_file: Option<PathBuf>,
    child: Option<Child>,
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
        let extra_args: Vec<String> = extra_args.iter().map(|s| (*s).to_owned()).collect();
        let mut last_error = None;
        // The free port is only free until someone else takes it: retry on a clash.
        for _ in 0..5 {
            let port = free_port()?;
            let mut process = Self {
                bin: bin.clone(),
                port,
                extra_args: extra_args.clone(),
                tls,
                config_file: config_file.clone(),
                child: None,
            };
            match process.spawn() {
                Ok(()) => return Ok(process),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/0` (`rediss://` for a TLS server).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (as a crash would: no shutdown, connections reset).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (there is no persistence).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let port = self.port.to_string();
        let (plain, tls) = if self.tls {
            ("0", port.as_str())
        } else {
            (port.as_str(), "0")
        };
        let mut child = Command::new(&self.bin)
            // A configuration file has to come first.
            .args(&self.config_file)
            .args(["--port", plain, "--tls-port", tls])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(self.dir()?)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "redis-server exited at start ({status}); port {port} may be taken"
                )));
            }
            // A server that answers on the port is not necessarily ours: until our child has
            // bound it, the port may still be held by another (a free port handed out twice,
            // or the old server in `restart`'s kill-respawn window). Only ours reports our
            // child's process id. A TLS server cannot be asked in plain text: there a TCP
            // accept has to do (those tests start a server of their own, once).
            let ready = if self.tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                server_pid(self.port, self.credentials()) == Some(child.id())
            };
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(std::io::Error::other(
            "redis-server did not answer PING within 10 s",
        ))
    }
}

impl RedisProcess {
    /// Credentials to ask a protected server who it is: the `--requirepass` among the extra
    /// arguments, else the first `--user` that is `on` with a `>password`.
    fn credentials(&self) -> Option<(Option<&str>, &str)> {
        let args = &self.extra_args;
        if let Some(i) = args.iter().position(|a| a == "--requirepass") {
            return args.get(i + 1).map(|pw| (None, pw.as_str()));
        }
        args.iter().enumerate().find_map(|(i, arg)| {
            if arg != "--user" {
                return None;
            }
            let name = args.get(i + 1)?;
            let rules: Vec<&String> = args[i + 2..]
                .iter()
                .take_while(|a| !a.starts_with("--"))
                .collect();
            let password = rules.iter().find_map(|r| r.strip_prefix('>'))?;
            rules
                .iter()
                .any(|r| *r == "on")
                .then_some((Some(name.as_str()), password))
        })
    }

    /// A working directory of its own, made empty: a server loads any `dump.rdb` it finds
    /// in its directory at start, and a replica (cluster, Sentinel tests) writes one there,
    /// so a shared directory would hand one server's data to the next.
    fn dir(&self) -> std::io::Result<PathBuf> {
        let dir = self.dir_path();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn dir_path(&self) -> PathBuf {
        std::env::temp_dir().join(format!(
            "redis-cache-api-{}-{}",
            std::process::id(),
            self.port
        ))
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.dir_path());
    }
}

/// True when something on 127.0.0.1:`port` answers a Redis `PING` (with `+PONG`, or with
/// `-NOAUTH`: a server that wants a password is still a server).
pub fn answers_ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

/// The `process_id` that the Redis on 127.0.0.1:`port` reports in `INFO server` (after
/// `AUTH [user] password` when given); `None` when nothing answers or it does not say.
pub fn server_pid(port: u16, credentials: Option<(Option<&str>, &str)>) -> Option<u32> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut request = Vec::new();
    if let Some((user, password)) = credentials {
        let args: Vec<&str> = ["AUTH"].into_iter().chain(user).chain([password]).collect();
        request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
    }
    request.extend_from_slice(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n");
    stream.write_all(&request).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(rest) = text.split("process_id:").nth(1)
            && let Some(line) = rest.split("\r\n").next()
            && rest.contains("\r\n")
        {
            return line.trim().parse().ok();
        }
        if text.starts_with('-') || reply.len() > 64 * 1024 {
            return None;
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A server already on the port (another test's, or the one `restart` just killed and
    /// that still answers) must not be taken for the new child.
    #[test]
    fn a_server_that_is_not_the_child_is_not_handed_out() {
        let Some(bin) = redis_server_bin() else {
            eprintln!("skipped: no redis-server binary (set REDIS_SERVER_BIN or install it)");
            return;
        };
        let other = RedisProcess::start(bin.clone(), &[]).unwrap();
        let mut impostor = RedisProcess {
            bin,
            port: other.port(),
            extra_args: Vec::new(),
            tls: false,
            config_file: None,
            child: None,
        };
        let spawned = impostor.spawn();
        assert!(
            spawned.is_err(),
            "handed out the server already on port {}",
            other.port()
        );
        assert!(answers_ping(other.port()), "the other server was disturbed");
    }

    #[test]
    fn the_child_is_recognised_by_its_pid_also_after_a_restart() {
        let Some(bin) = redis_server_bin() else {
            eprintln!("skipped: no redis-server binary (set REDIS_SERVER_BIN or install it)");
            return;
        };
        let mut redis = RedisProcess::start(bin, &["--requirepass", "pw"]).unwrap();
        let pid = redis.child.as_ref().map(Child::id);
        assert_eq!(server_pid(redis.port(), Some((None, "pw"))), pid);
        redis.restart().unwrap();
        let new_pid = redis.child.as_ref().map(Child::id);
        assert_ne!(new_pid, pid);
        assert_eq!(server_pid(redis.port(), Some((None, "pw"))), new_pid);
    }
}
