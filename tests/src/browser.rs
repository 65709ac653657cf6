//! Headless Chromium for the browser tests (`docs_browser`, `dashboard_browser`): a
//! `chromedriver` session whose every non-loopback request goes to a recording [`Sink`], so a
//! test can assert that a page works offline ([`assert_offline`]).
//!
//! `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override the binaries (default: on the `PATH`).

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::ClientBuilder;
use serde_json::json;

/// A `chromedriver` on a free port, in a process group of its own: on drop the whole group
/// is killed, the browser it started included (a failed test would otherwise leave the
/// browser running).
pub struct Driver {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl Driver {
    /// Starts `chromedriver` and waits until it listens.
    pub fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into());
        let port = crate::binary::free_port();
        let child = Command::new(&bin)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin} ({e}): install chromium-driver (scripts/test.sh does)")
            });
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Self { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session through `driver`, with its own profile directory, sending
/// every non-loopback request to `sink`.
pub async fn browser(
    driver: &Driver,
    sink: &Sink,
    profile: &std::path::Path,
) -> fantoccini::Client {
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-quic", "--no-first-run",
                // Offline: every request that is not to loopback goes to the sink.
                format!("--proxy-server=http://127.0.0.1:{}", sink.port),
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,2000",
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("start a Chromium session")
}

/// Chromium's own services, which it calls whatever page it shows (Debian's default search
/// engine preconnect, its clock, updates, sign-in, autofill): the only hosts allowed to
/// reach the sink. A page's reference elsewhere (a CDN, fonts) would show up as another host.
pub const CHROMIUM_SERVICES: [&str; 9] = [
    "start.duckduckgo.com",
    "clients2.google.com",
    "update.googleapis.com",
    "accounts.google.com",
    "content-autofill.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "clientservices.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
    "redirector.gvt1.com",
];

/// The host a proxy request line names: `CONNECT host:443 HTTP/1.1` or
/// `GET http://host/path HTTP/1.1`.
pub fn host_of(request_line: &str) -> Option<String> {
    let target = request_line.split(' ').nth(1)?;
    let authority = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .unwrap_or(target);
    let authority = authority.split('/').next()?;
    Some(
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_owned(),
    )
}

/// Asserts that nothing the page asked for reached the network: every request that left
/// the browser arrived at the sink (see the end of the test), and the sink saw none but
/// Chromium's own. (A request blocked before the network, by the pages' CSP, arrives nowhere,
/// which is the point.)
pub fn assert_offline(sink: &Sink, page: &str) {
    let seen = sink.seen();
    for line in &seen {
        let host = host_of(line).unwrap_or_default();
        assert!(
            CHROMIUM_SERVICES.contains(&host.as_str()),
            "{page}: a request to {host} reached the network ({line}); all seen: {seen:?}"
        );
    }
}

/// Where the browser must send every non-loopback request: a "proxy" that answers
/// nothing and records the request line of each attempt.
pub struct Sink {
    /// Where it listens.
    pub port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    /// Listens on a free loopback port, recording in a thread of its own.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                use std::io::BufRead;
                let mut line = String::new();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = std::io::BufReader::new(&stream).read_line(&mut line);
                // A connection that sent no request (Chromium opens spare connections to
                // its proxy ahead of need) asked for nothing.
                if !line.trim().is_empty() {
                    record.lock().unwrap().push(line.trim().to_owned());
                }
            }
        });
        Self { port, seen }
    }

    /// The request lines recorded so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
