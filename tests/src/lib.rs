//! Test harness: a real `redis-server` per test, and helpers to drive the merged router
//! in-process (`oneshot`) or over real HTTP to a runner bound on port 0.
//!
//! `redis-server` comes from `REDIS_SERVER_BIN` or the `PATH` (the README's test command
//! installs it when missing). Each [`TestApp`] owns its server, on a free port, killed when
//! the test ends, so tests run in parallel without sharing any state.

pub mod lambda;
pub mod runtime_api;
pub mod tls;

use std::net::SocketAddr;

use axum::{Router, body::Body};
use http::{HeaderMap, Method, Request, StatusCode};
use local_runner::redis_process::{RedisProcess, redis_server_bin};
use serde_json::Value;
use shared::{AppState, Config};
use tower::ServiceExt;

/// Every route of API.md (plus the `/queue` default-name shortcuts).
pub const ROUTES: [(&str, &str); 28] = [
    ("post", "/cache"),
    ("get", "/cache"),
    ("get", "/cache/{key}"),
    ("delete", "/cache/{key}"),
    ("post", "/users"),
    ("get", "/users/{user_id}"),
    ("patch", "/users/{user_id}"),
    ("delete", "/users/{user_id}"),
    ("get", "/rate-limit/check"),
    ("post", "/lock/{resource}"),
    ("get", "/lock/{resource}"),
    ("post", "/lock/{resource}/acquire"),
    ("post", "/lock/{resource}/extend"),
    ("post", "/lock/{resource}/release"),
    ("post", "/queue"),
    ("get", "/queue"),
    ("delete", "/queue"),
    ("post", "/queue/{name}"),
    ("get", "/queue/{name}"),
    ("delete", "/queue/{name}"),
    ("post", "/queue/{name}/batch"),
    ("get", "/queue/{name}/batch"),
    ("get", "/queue/{name}/all"),
    ("post", "/queue/{name}/claim"),
    ("post", "/queue/{name}/ack"),
    ("get", "/stats"),
    ("post", "/stats/reset"),
    ("get", "/health"),
];

/// Starts a fresh `redis-server` (no persistence) on a free port.
pub fn start_redis(extra_args: &[&str]) -> RedisProcess {
    let bin = redis_server_bin().expect(
        "redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER_BIN",
    );
    RedisProcess::start(bin, extra_args).expect("start redis-server")
}

/// A configuration pointing at `url`, with short time-outs so failure tests are quick.
pub fn test_config(url: &str) -> Config {
    let url = url.to_owned();
    Config::from_lookup(move |name| match name {
        "REDIS_URL" => Some(url.clone()),
        "REDIS_CONNECT_TIMEOUT_MS" => Some("250".into()),
        "REDIS_RESPONSE_TIMEOUT_MS" => Some("500".into()),
        _ => None,
    })
    .expect("test config")
}

/// An answer, with its body parsed as JSON (a non-JSON body becomes a JSON string).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts that this is an RFC 9457 problem with `status`, naming `field` when given.
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            "application/problem+json",
            "{self:?}"
        );
        assert_eq!(self.body["status"], status, "{self:?}");
        assert!(self.body["type"].is_string(), "{self:?}");
        assert!(self.body["title"].is_string(), "{self:?}");
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{self:?}"
        );
        if let Some(field) = field {
            assert_eq!(self.body["field"], field, "{self:?}");
        }
    }
}

/// The merged router of every function on a private Redis.
pub struct TestApp {
    /// The private Redis (stop/restart it to test failures).
    pub redis: RedisProcess,
    /// The state the router was built with.
    pub state: AppState,
    /// The merged router, as the runner serves it.
    pub router: Router,
}

impl TestApp {
    /// A fresh Redis and the default test configuration.
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// A fresh Redis and the test configuration changed by `adjust`.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::build(start_redis(&[]), adjust)
    }

    /// The default test configuration on a Redis the test started (e.g. with extra flags).
    pub async fn with_redis(redis: RedisProcess) -> Self {
        Self::build(redis, |_| {})
    }

    /// A Redis the test started, with the test configuration changed by `adjust` (e.g. a
    /// `redis_url` with credentials, TLS files).
    pub async fn with_redis_and_config(
        redis: RedisProcess,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        Self::build(redis, adjust)
    }

    fn build(redis: RedisProcess, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config(&redis.url());
        adjust(&mut config);
        let state = AppState::new(config).expect("state");
        let router = local_runner::app(state.clone());
        Self {
            redis,
            state,
            router,
        }
    }

    /// Sends a request through the router in-process.
    pub async fn request(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        Reply {
            status,
            headers,
            body: parse_body(&bytes),
        }
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        let body = match body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.request(builder.body(body).expect("request")).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// A direct connection to the test's Redis, to look at what the API stored.
    pub async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// Serves the router over real HTTP on 127.0.0.1:0, as the runner binary does.
    pub async fn serve(&self) -> Server {
        Server::start(self.router.clone()).await
    }
}

/// A runner serving over real HTTP; stops when dropped or on [`Server::shutdown`].
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Serves `router` on a free loopback port with the runner's `serve` (graceful shutdown).
    pub async fn start(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(local_runner::serve(listener, router, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `method path` over HTTP, with a JSON body when given.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply_of(request.send().await.expect("HTTP request")).await
    }

    /// `GET path` over HTTP.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body over HTTP.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Asks the server to stop (as SIGTERM does) and waits until it has drained.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("join").expect("serve");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Turns a `reqwest` response into a [`Reply`].
pub async fn reply_of(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    Reply {
        status,
        headers,
        body: parse_body(&bytes),
    }
}

fn parse_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
