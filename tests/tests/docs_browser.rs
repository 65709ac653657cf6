//! The docs pages in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini) opens `/docs` and `/redoc` from a runner, with every
//! non-loopback request sent to a recording sink that answers nothing, and checks that
//! every operation is listed, that Swagger UI's "Try it out" works against the runner, and
//! that neither page tried to reach beyond loopback.
//!
//! `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override the binaries (default: on the `PATH`).

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::Duration,
};

use api_tests::TestApp;
use fantoccini::{ClientBuilder, Locator};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// A `chromedriver` on a free port, in a process group of its own: on drop the whole group
/// is killed, the browser it started included (a failed test would otherwise leave the
/// browser running).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into());
        let port = api_tests::binary::free_port();
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

async fn browser(driver: &Driver, sink: &Sink, profile: &std::path::Path) -> fantoccini::Client {
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

/// Every (method, summary) the OpenAPI document declares.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(summary) = op["summary"].as_str() {
                out.push((method.clone(), summary.to_owned()));
            }
        }
    }
    out
}

/// Chromium's own services, which it calls whatever page it shows (Debian's default search
/// engine preconnect, its clock, updates, sign-in, autofill): the only hosts allowed to
/// reach the sink. A page's reference elsewhere (a CDN, fonts) would show up as another host.
const CHROMIUM_SERVICES: [&str; 9] = [
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
fn host_of(request_line: &str) -> Option<String> {
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
fn assert_offline(sink: &Sink, page: &str) {
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
struct Sink {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    fn start() -> Self {
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

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_and_redoc_render_offline_and_try_it_out_works() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let doc = server.get("/openapi.json").await.body;
    let ops = operations(&doc);
    assert!(ops.len() >= 28, "{ops:?}");

    let driver = Driver::start();
    let sink = Sink::start();
    let profile = std::env::temp_dir().join(format!("chromium-profile-{}", server.addr.port()));
    let client = browser(&driver, &sink, &profile).await;
    let wait = Duration::from_secs(30);

    // Swagger UI lists every operation.
    client.goto(&server.url("/docs/")).await.unwrap();
    client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(".opblock"))
        .await
        .unwrap();
    let listed = client
        .find_all(Locator::Css(".opblock"))
        .await
        .unwrap()
        .len();
    assert_eq!(
        listed,
        ops.len(),
        "Swagger UI lists {listed} of {} operations",
        ops.len()
    );

    // "Try it out" on POST /cache with the example body, then Execute.
    let op = client
        .find(Locator::Css("#operations-cache-put_entry"))
        .await
        .expect("POST /cache in Swagger UI");
    op.find(Locator::Css(".opblock-summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for button in ["try-out__btn", "execute"] {
        let css = format!("#operations-cache-put_entry .{button}");
        let element = client.wait().at_most(wait).for_element(Locator::Css(&css));
        element.await.unwrap().click().await.unwrap();
    }
    let status = client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(
            "#operations-cache-put_entry .live-responses-table tbody .response-col_status",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status.trim(), "201", "Try it out answered {status}");
    let mut conn = app.redis_conn().await;
    let stored: Option<String> = conn.hget("demo_api:cache:hello", "v").await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("\"world\""),
        "the browser's call did not reach Redis"
    );
    assert_offline(&sink, "/docs");

    // ReDoc shows every operation's summary.
    client.goto(&server.url("/redoc")).await.unwrap();
    let rendered = client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(".api-content"))
        .await;
    // A page stuck on an outside request is reported as such, before the render check.
    assert_offline(&sink, "/redoc");
    rendered.unwrap();
    let text = client
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    for (method, summary) in &ops {
        assert!(
            text.contains(summary.as_str()),
            "ReDoc lacks {method} '{summary}'"
        );
    }
    assert_offline(&sink, "/redoc");

    // The sink really gets what leaves the browser: a page elsewhere arrives there.
    let _ = client.goto("http://offline-check.invalid/probe").await;
    let deadline = std::time::Instant::now() + wait;
    while !sink
        .seen()
        .iter()
        .any(|l| host_of(l).as_deref() == Some("offline-check.invalid"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a request beyond loopback never reached the sink: {:?}",
            sink.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(profile);
}
