//! The docs pages in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini) opens `/docs` and `/redoc` from a runner, with every
//! non-loopback request sent to a recording sink that answers nothing, and checks that
//! every operation is listed, that Swagger UI's "Try it out" works against the runner, and
//! that neither page tried to reach beyond loopback.
//!
//! `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override the binaries (default: on the `PATH`).

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use api_tests::TestApp;
use fantoccini::{ClientBuilder, Locator};
use redis::AsyncCommands;
use serde_json::{Value, json};

/// A `chromedriver` on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER_BIN").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&bin)
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

/// The hosts of the resources the current page asked for that the runner did not serve.
async fn foreign_hosts(client: &fantoccini::Client, origin: &str) -> Vec<String> {
    let loaded = client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name);",
            vec![],
        )
        .await
        .unwrap();
    loaded
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|u| {
            !u.starts_with(origin) && (u.starts_with("http://") || u.starts_with("https://"))
        })
        .filter_map(|u| u.split('/').nth(2).map(str::to_owned))
        .collect()
}

/// Asserts that no resource of the page went out: each one it referenced elsewhere was
/// blocked before the network (CSP), never seen by the sink. (The sink also sees Chromium's
/// own background requests; those are not the page's, and are ignored.)
async fn assert_offline(client: &fantoccini::Client, origin: &str, sink: &Sink, page: &str) {
    let seen = sink.seen();
    for host in foreign_hosts(client, origin).await {
        let host_only = host.split(':').next().unwrap_or(&host).to_owned();
        assert!(
            !seen.iter().any(|line| line.contains(&host_only)),
            "{page} requested {host} from outside: {seen:?}"
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
                record.lock().unwrap().push(line.trim().to_owned());
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
    let origin = server.url("");
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
    client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#operations-cache-put_entry .try-out__btn"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css("#operations-cache-put_entry .execute"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    let stored: Option<String> = conn.get("demo_api:cache:hello").await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("\"world\""),
        "the browser's call did not reach Redis"
    );
    assert_offline(&client, &origin, &sink, "/docs").await;

    // ReDoc shows every operation's summary.
    client.goto(&server.url("/redoc")).await.unwrap();
    client
        .wait()
        .at_most(wait)
        .for_element(Locator::Css(".api-content"))
        .await
        .unwrap();
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
    assert_offline(&client, &origin, &sink, "/redoc").await;

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(profile);
}
