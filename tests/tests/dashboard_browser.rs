//! The dashboard (`GET /dashboard`, README "Observability") in headless Chromium, offline:
//! opened from the URL the demo tour prints while the tour runs against a runner, its charts
//! must fill from the tour's requests (requests per route, latency, hit rate, Redis memory,
//! the rate limit of the tour's caller) and its tables show a queue and a lock; no request
//! may leave loopback. Served by the docs function alone (as on Lambda, where `/metrics` is
//! absent), the request charts say so in words. With `API_KEY` set, the page reads nothing
//! until the key is typed into it.
//!
//! `UPDATE_SCREENSHOT=1` writes the screenshot the README shows (`docs/dashboard.png`).

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use api_tests::{
    Server, TestApp,
    browser::{Driver, Sink, assert_offline, browser},
};
use fantoccini::Locator;
use serde_json::{Value, json};

/// The demo tour's output, readable while the tour still writes it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What the page shows, read in the page: the points of each chart's lines by series, the
/// names of the table rows, the figures' and rate limit's text, the request charts' notice.
const READ_PAGE: &str = r##"
const charts = {}, maxima = {};
for (const section of ["requests", "latency", "hits", "redis", "ops", "queues", "rate-limit"]) {
  charts[section] = {};
  maxima[section] = {};
  for (const path of document.querySelectorAll(`#${section} path[data-series]`)) {
    charts[section][path.dataset.series] = Number(path.dataset.points);
    maxima[section][path.dataset.series] = Number(path.dataset.max);
  }
}
const rows = (id) => [...document.querySelectorAll(`#${id} tr[data-name]`)].map((r) => r.dataset.name);
return {
  charts,
  maxima,
  queues: rows("queue-rows"),
  locks: rows("lock-rows"),
  memory: document.getElementById("memory").textContent,
  rate_limit: document.getElementById("rl-text").textContent,
  absent: [...document.querySelectorAll("#requests .absent")].map((p) => p.textContent).join(" "),
  lock_table: document.getElementById("lock-rows").textContent,
  status: document.getElementById("status").textContent,
};
"##;

/// Polls the page until `done` holds for [`READ_PAGE`]'s answer; panics with the last one
/// after `limit`.
async fn until(client: &fantoccini::Client, limit: Duration, done: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    loop {
        let seen = client.execute(READ_PAGE, vec![]).await.unwrap();
        if done(&seen) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "the dashboard never showed it; last seen: {seen:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The largest number of points a line of `chart` has whose series name holds `name`.
fn points(seen: &Value, chart: &str, name: &str) -> u64 {
    seen["charts"][chart]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(series, _)| series.contains(name))
        .filter_map(|(_, n)| n.as_u64())
        .max()
        .unwrap_or(0)
}

/// The row names of the table `list` ([`READ_PAGE`]'s `queues` or `locks`).
fn names(seen: &Value, list: &str) -> Vec<String> {
    let rows = seen[list].as_array().into_iter().flatten();
    rows.filter_map(|n| n.as_str().map(str::to_owned)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_demo_tour_offline() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let driver = Driver::start();
    let sink = Sink::start();
    let profile = std::env::temp_dir().join(format!("chromium-dashboard-{}", server.addr.port()));
    let client = browser(&driver, &sink, &profile).await;
    client.set_window_size(1400, 1150).await.unwrap();
    let wait = Duration::from_secs(60);

    // The tour runs while the page, opened at the URL the tour prints, watches it.
    let output = Shared::default();
    let mut writer = output.clone();
    let base = server.url("");
    let tour = local_runner::demo::run(&base, local_runner::demo::Api::Running, None, &mut writer);
    let watch = async {
        let started = Instant::now();
        let url = loop {
            let text = output.text();
            if let Some(at) = text.find("http://") {
                let url = &text[at..];
                if let Some(end) = url.find(char::is_whitespace) {
                    break url[..end].to_owned();
                }
            }
            assert!(started.elapsed() < wait, "no dashboard URL printed: {text}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(
            url.starts_with(&server.url("/dashboard?caller=demo-")),
            "{url}"
        );
        client.goto(&url).await.unwrap();
        // The per-route request chart moves as the tour's steps run, the tour's caller fills
        // its limit and its queue holds three tasks (each state lasts one poll).
        until(&client, wait, |seen| {
            points(seen, "requests", "/cache") >= 2
                && seen["maxima"]["rate-limit"]["used"] == 10
                && seen["maxima"]["queues"]["demo-tasks pending"] == 3
        })
        .await;
        url
    };
    let (toured, url) = tokio::join!(tour, watch);
    toured.unwrap();

    // What the tour cleaned up, held again for the tables; the tour's caller fills its limit.
    let r = app
        .post("/queue/dash-jobs", json!({"id": "t1", "title": "a task"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = app
        .post("/lock/dash-ledger/acquire?ttl=60", json!(null))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let caller = url.rsplit('=').next().unwrap().to_owned();
    for _ in 0..3 {
        let r = app
            .get(&format!(
                "/rate-limit/check?user_id={caller}&limit=10&window=60"
            ))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    until(&client, wait, |seen| {
        points(seen, "requests", "/queue/{name}") >= 2
            && points(seen, "latency", "/") >= 2
            && points(seen, "hits", "%") >= 2
            && points(seen, "redis", "memory") >= 2
            && points(seen, "ops", "ops/s") >= 2
            && points(seen, "queues", "dash-jobs") >= 1
            && points(seen, "rate-limit", "used") >= 2
            && names(seen, "queues").contains(&"dash-jobs".to_owned())
            && names(seen, "locks").contains(&"dash-ledger".to_owned())
            && seen["memory"]
                .as_str()
                .is_some_and(|m| m.ends_with("memory") && !m.starts_with('–'))
            && seen["rate_limit"]
                .as_str()
                .is_some_and(|t| t.starts_with("3 of 10 used"))
    })
    .await;
    assert_offline(&sink, "/dashboard");

    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let png = client.screenshot().await.unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/dashboard.png");
        std::fs::write(path, png).unwrap();
        eprintln!("wrote {path}");
    }

    // The docs function alone (as on Lambda): no /metrics, and the page says so in words.
    let docs = Server::start(docs::router()).await;
    client.goto(&docs.url("/dashboard")).await.unwrap();
    until(&client, wait, |seen| {
        seen["absent"]
            .as_str()
            .is_some_and(|t| t.contains("No /metrics here"))
    })
    .await;
    assert_offline(&sink, "/dashboard on the docs function");

    // With API_KEY set the page is open, but what it reads is not until the key is typed in
    // (kept in the tab, sent as x-api-key).
    const KEY: &str = "dashboard-key-0123456789";
    let keyed = TestApp::with_config(|c| c.api_key = Some(KEY.into())).await;
    let keyed_server = keyed.serve().await;
    client.goto(&keyed_server.url("/dashboard")).await.unwrap();
    // Every panel says what failed, none looks empty-but-current ("no lock held"), and the
    // header names the failure instead of "updated".
    until(&client, wait, |seen| {
        let says_401 = |field: &str| seen[field].as_str().is_some_and(|t| t.contains("401"));
        says_401("absent") && says_401("lock_table") && says_401("status")
    })
    .await;
    let field = client.find(Locator::Id("api-key")).await.unwrap();
    field.send_keys(KEY).await.unwrap();
    // The key is stored on "change", which a field fires when it loses the focus.
    client
        .find(Locator::Id("rl-user"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(&client, wait, |seen| {
        points(seen, "requests", "/stats") >= 2 && points(seen, "redis", "memory") >= 2
    })
    .await;
    let stored = client
        .execute(
            "return sessionStorage.getItem('redis-cache-api-dashboard-key');",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored, KEY);
    assert_offline(&sink, "/dashboard with an API key");

    client.close().await.unwrap();
    let _ = std::fs::remove_dir_all(profile);
}
