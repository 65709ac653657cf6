//! The docs pages in a real browser: headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` by fantoccini) opens `/docs` and `/redoc` from a runner, with every
//! non-loopback request sent to a recording sink that answers nothing, and checks that
//! every operation is listed, that Swagger UI's "Try it out" works against the runner, and
//! that neither page tried to reach beyond loopback.
//!
//! `CHROMIUM_BIN` and `CHROMEDRIVER_BIN` override the binaries (default: on the `PATH`).

use std::time::Duration;

use api_tests::{
    TestApp,
    browser::{Driver, Sink, assert_offline, browser, host_of},
};
use fantoccini::Locator;
use redis::AsyncCommands;
use serde_json::Value;

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
