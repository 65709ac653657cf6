//! The local runner: embedded Redis default, graceful shutdown.

use std::{sync::Arc, time::Duration};

use api_tests::{Server, test_config};
use axum::{Router, routing::get};
use local_runner::redis_process::{answers_ping, redis_server_bin};
use tokio::sync::Notify;

/// A port nothing listens on (free when asked).
fn dead_port() -> u16 {
    api_tests::binary::free_port()
}

#[test]
fn embedded_redis_starts_when_nothing_answers_and_stops_on_drop() {
    let mut config = shared::Config::from_lookup(|_| None).unwrap();
    let port = dead_port();
    let process = local_runner::embedded_redis(&mut config, port, redis_server_bin())
        .unwrap()
        .expect("an embedded redis-server");
    assert_eq!(config.redis_url, process.url());
    assert!(answers_ping(process.port()));
    let p = process.port();
    drop(process);
    assert!(!answers_ping(p), "redis-server outlived its owner");
}

#[test]
fn embedded_redis_is_not_started_when_redis_url_is_set_or_default_answers() {
    let mut config = test_config("redis://127.0.0.1:1/0");
    assert!(
        local_runner::embedded_redis(&mut config, dead_port(), redis_server_bin())
            .unwrap()
            .is_none()
    );
    assert_eq!(config.redis_url, "redis://127.0.0.1:1/0");

    let running = api_tests::start_redis(&[]);
    let mut config = shared::Config::from_lookup(|_| None).unwrap();
    assert!(
        local_runner::embedded_redis(&mut config, running.port(), redis_server_bin())
            .unwrap()
            .is_none()
    );
}

#[test]
fn missing_redis_server_binary_says_how_to_get_one() {
    let mut config = shared::Config::from_lookup(|_| None).unwrap();
    let why = local_runner::embedded_redis(&mut config, dead_port(), None).unwrap_err();
    assert!(why.contains("apt-get install redis-server"), "{why}");
    assert!(why.contains("brew install redis"), "{why}");
    assert!(why.contains("docker-compose.redis.yml"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_refuses_new_ones() {
    // The handler says when it has started, and finishes when the test lets it.
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let slow = {
        let (started, release) = (started.clone(), release.clone());
        Router::new().route(
            "/slow",
            get(move || async move {
                started.notify_one();
                release.notified().await;
                "done"
            }),
        )
    };
    let server = Server::start(slow).await;
    let url = server.url("/slow");
    let addr = server.addr;
    let in_flight =
        tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    started.notified().await;
    // returns only once the in-flight request is answered
    let stopping = tokio::spawn(server.shutdown());
    // Draining: new connections are refused while the request is still running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting 10 s after the shutdown began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!in_flight.is_finished(), "the in-flight request was cut");
    let mut stopping = stopping;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut stopping)
            .await
            .is_err(),
        "the shutdown returned with a request still in flight"
    );
    release.notify_one();
    stopping.await.unwrap();
    // Answered in full, not cut off: the server drained it before stopping.
    assert_eq!(in_flight.await.unwrap(), "done");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );
}
