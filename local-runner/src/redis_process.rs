//! A private `redis-server` child process on a free loopback port, with no persistence.
//!
//! The runner uses it as its embedded default (no `REDIS_URL` and nothing at the default
//! address), and the demo tour for a Redis of its own; the test harness builds its servers
//! on it (TLS, Sentinels, stop and restart are the harness's own). The process is killed
//! when the value is dropped, so no test or runner leaves one behind.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
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

/// How to start a `redis-server`, beyond what every one gets (loopback, no persistence, an
/// empty directory of its own).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A configuration file, passed first (a Sentinel's writable `sentinel.conf`).
    pub config_file: Option<PathBuf>,
    /// TLS only (`--port 0 --tls-port <port>`); `extra_args` then name its certificate
    /// files (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`).
    pub tls: bool,
    /// Appended arguments (`--requirepass`, `--maxmemory`, ...).
    pub extra_args: Vec<String>,
}

/// A running `redis-server` child, killed on drop.
#[derive(Debug)]
pub struct RedisProcess {
    port: u16,
    tls: bool,
    child: Child,
}

impl RedisProcess {
    /// Starts `redis-server` on a free port with `--save "" --appendonly no` and waits until
    /// it answers `PING`. `extra_args` are appended (`--requirepass`, `--maxmemory`, ...).
    pub fn start(bin: PathBuf, extra_args: &[&str]) -> std::io::Result<Self> {
        let extra_args = extra_args.iter().map(|s| (*s).to_owned()).collect();
        Self::start_with(
            &bin,
            &Options {
                extra_args,
                ..Options::default()
            },
        )
    }

    /// Starts `redis-server` with `options` on a free port, and waits until it answers.
    pub fn start_with(bin: &Path, options: &Options) -> std::io::Result<Self> {
        let mut last_error = None;
        // The free port is only free until someone else takes it: retry on a clash.
        for _ in 0..5 {
            match Self::start_on(bin, free_port()?, options) {
                Ok(process) => return Ok(process),
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

    /// Starts `redis-server` with `options` on `port` (one attempt), and waits until it
    /// answers there as itself.
    pub fn start_on(bin: &Path, port: u16, options: &Options) -> std::io::Result<Self> {
        let port_arg = port.to_string();
        let (plain, tls) = if options.tls {
            ("0", port_arg.as_str())
        } else {
            (port_arg.as_str(), "0")
        };
        let mut child = Command::new(bin)
            // A configuration file has to come first.
            .args(&options.config_file)
            .args(["--port", plain, "--tls-port", tls])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir"])
            .arg(empty_dir(port)?)
            .args(&options.extra_args)
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
            // or an old server on the port in its kill-respawn window). Only ours reports
            // our child's process id. A TLS server cannot be asked in plain text: there a TCP
            // accept has to do (those tests start a server of their own, once).
            let ready = if options.tls {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                server_pid(port, credentials(&options.extra_args)) == Some(child.id())
            };
            if ready {
                return Ok(Self {
                    port,
                    tls: options.tls,
                    child,
                });
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

/// Credentials to ask a protected server who it is: the `--requirepass` among the
/// arguments, else the first `--user` that is `on` with a `>password`.
fn credentials(args: &[String]) -> Option<(Option<&str>, &str)> {
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

/// The working directory of the server on `port`, made empty: a server loads any
/// `dump.rdb` it finds in its directory at start, and a replica (cluster, Sentinel tests)
/// writes one there, so a shared directory would hand one server's data to the next.
fn empty_dir(port: u16) -> std::io::Result<PathBuf> {
    let dir = dir_path(port);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn dir_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("redis-cache-api-{}-{port}", std::process::id()))
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(dir_path(self.port));
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

    /// A server already on the port (another test's, or one just killed that still
    /// answers) must not be taken for the new child.
    #[test]
    fn a_server_that_is_not_the_child_is_not_handed_out() {
        let Some(bin) = redis_server_bin() else {
            eprintln!("skipped: no redis-server binary (set REDIS_SERVER_BIN or install it)");
            return;
        };
        let other = RedisProcess::start(bin.clone(), &[]).unwrap();
        let impostor = RedisProcess::start_on(&bin, other.port(), &Options::default());
        assert!(
            impostor.is_err(),
            "handed out the server already on port {}",
            other.port()
        );
        assert!(answers_ping(other.port()), "the other server was disturbed");
    }

    #[test]
    fn the_child_is_recognised_by_its_pid_behind_a_password() {
        let Some(bin) = redis_server_bin() else {
            eprintln!("skipped: no redis-server binary (set REDIS_SERVER_BIN or install it)");
            return;
        };
        let redis = RedisProcess::start(bin, &["--requirepass", "pw"]).unwrap();
        assert_eq!(
            server_pid(redis.port(), Some((None, "pw"))),
            Some(redis.child.id())
        );
    }
}
