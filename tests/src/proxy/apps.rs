//! The API behind a [`FaultProxy`]: in-process ([`proxied_app`]) or as the `local-runner`
//! binary a user runs ([`Runner`]), and [`Api`], one way for a test to call either with an
//! `Idempotency-Key`, telling answers from transport failures.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::Router;
use http::Method;
use shared::Config;
use tower::ServiceExt;

use super::FaultProxy;
use crate::{Reply, TestApp, start_redis};

/// A fresh `redis-server`, a proxy in front of it, and the merged router whose `REDIS_URL` is
/// the proxy (the test configuration, changed by `adjust`). `app.redis_conn()` still reaches
/// Redis directly, past the proxy, to look at what the API stored.
pub async fn proxied_app(adjust: impl FnOnce(&mut Config)) -> (TestApp, FaultProxy) {
    let redis = start_redis(&[]);
    let proxy = FaultProxy::to_port(redis.port()).await;
    let url = proxy.url();
    let app = TestApp::with_redis_and_config(redis, |config| {
        config.redis_url = url;
        adjust(config);
    })
    .await;
    (app, proxy)
}

/// The `local-runner` binary: `LOCAL_RUNNER_BIN`, else the workspace's debug build (built
/// here when missing or stale; cargo only relinks what changed).
pub fn runner_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("LOCAL_RUNNER_BIN") {
        return PathBuf::from(bin);
    }
    crate::binary::runner_bin()
}

/// How long the runner may take to say it listens (it checks Redis first, bounded by
/// `REDIS_CONNECT_TIMEOUT_MS`).
const START_BOUND: Duration = Duration::from_secs(30);

/// The runner binary serving on a free port against `redis_url`; killed on drop.
pub struct Runner {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

impl Runner {
    /// Starts the binary with the test time-outs and waits until it says it listens.
    pub fn start(redis_url: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let mut child = Command::new(runner_binary())
            .env("REDIS_URL", redis_url)
            .env("PORT", port.to_string())
            .env("REDIS_CONNECT_TIMEOUT_MS", "250")
            .env("REDIS_RESPONSE_TIMEOUT_MS", "500")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start local-runner");
        // Its stdout is read on a thread of its own (and drained to the end, so the runner
        // never blocks on a full pipe); here we wait for "listening", with a bound.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + START_BOUND;
        let mut seen = Vec::new();
        while !seen
            .last()
            .is_some_and(|l: &String| l.contains("listening"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                // Exited, or silent past the bound.
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("local-runner did not start within {START_BOUND:?}: {seen:#?}");
                }
            }
        }
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a test calls the API: the router in-process, or a server over HTTP.
#[derive(Clone)]
pub enum Api {
    /// The merged router, called in-process.
    InProcess(Router),
    /// A server at `base` (`http://host:port`).
    Http {
        /// Base URL.
        base: String,
        /// Client (with a per-request time-out).
        client: reqwest::Client,
    },
}

impl Api {
    /// Calls over HTTP to `base`, each request bounded by `timeout`.
    pub fn http(base: &str, timeout: Duration) -> Self {
        Self::Http {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("HTTP client"),
        }
    }

    /// `method path` with an optional JSON body and `Idempotency-Key`. `Err` is a transport
    /// failure (no answer), which a client retries like a 503.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, String> {
        let key = idempotency_key.map(|k| ("idempotency-key", k));
        self.send_with(method, path, body, key.as_slice()).await
    }

    /// [`Api::send`] with any request headers (`If-Match`, `Idempotency-Key`, ...).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        match self {
            Self::InProcess(router) => {
                let request =
                    crate::json_request(method, path, body, headers).map_err(|e| e.to_string())?;
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(reply(status, headers, &bytes))
            }
            Self::Http { base, client } => {
                let method = reqwest::Method::from_bytes(method.as_str().as_bytes())
                    .map_err(|e| e.to_string())?;
                let mut request = client.request(method, format!("{base}{path}"));
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                Ok(reply(status, headers, &bytes))
            }
        }
    }
}

/// A [`Reply`] from its parts (a non-JSON body becomes a JSON string).
fn reply(status: http::StatusCode, headers: http::HeaderMap, bytes: &[u8]) -> Reply {
    Reply {
        status,
        headers,
        body: serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        }),
    }
}
