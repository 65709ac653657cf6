//! Test harness: a real `redis-server` per test, and helpers to drive the merged router
//! in-process (`oneshot`) or over real HTTP to a runner bound on port 0.
//!
//! `redis-server` comes from `REDIS_SERVER_BIN` or the `PATH` (the README's test command
//! installs it when missing). Each [`TestApp`] owns its server, on a free port, killed when
//! the test ends, so tests run in parallel without sharing any state.
//!
//! With `API_TEST_REDIS=cluster`, [`TestApp::new`] and [`TestApp::with_config`] give each test
//! a Redis Cluster of its own instead (3 primaries, 3 replicas, a password), and the app runs
//! in `REDIS_MODE=cluster`: the same tests then prove the API on a cluster. Tests that stop
//! or restart "the" Redis skip themselves there ([`TestApp::on_cluster`]).

pub mod binary;
pub mod browser;
pub mod lambda;
pub mod proxy;
pub mod redis_process;
pub mod runtime_api;
pub mod tls;
pub mod topology;

use std::net::SocketAddr;

use crate::redis_process::{RedisProcess, redis_server_bin};
use axum::{Router, body::Body};
use http::{HeaderMap, Method, Request, StatusCode};
use redis::{Cmd, Pipeline, RedisFuture, aio::ConnectionLike};
use serde_json::Value;
use shared::{AppState, Config};
use tower::ServiceExt;

/// Every route of the OpenAPI document (plus the `/queue` default-name shortcuts).
pub const ROUTES: [(&str, &str); 42] = [
    ("post", "/cache"),
    ("get", "/cache"),
    ("get", "/cache/{key}"),
    ("delete", "/cache/{key}"),
    ("post", "/users"),
    ("get", "/users/{user_id}"),
    ("patch", "/users/{user_id}"),
    ("delete", "/users/{user_id}"),
    ("get", "/rate-limit/check"),
    ("post", "/rate-limit/check"),
    ("get", "/rate-limit/status"),
    ("delete", "/rate-limit/{user_id}"),
    ("post", "/lock/{resource}"),
    ("get", "/lock/{resource}"),
    ("post", "/lock/{resource}/acquire"),
    ("post", "/lock/{resource}/extend"),
    ("post", "/lock/{resource}/release"),
    ("put", "/lock/{resource}/protected"),
    ("get", "/lock/{resource}/protected"),
    ("get", "/semaphore/{name}"),
    ("post", "/semaphore/{name}/acquire"),
    ("post", "/semaphore/{name}/extend"),
    ("post", "/semaphore/{name}/release"),
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
    ("post", "/queue/{name}/nack"),
    ("get", "/queue/{name}/dead"),
    ("delete", "/queue/{name}/dead"),
    ("post", "/queue/{name}/dead/replay"),
    ("get", "/stats"),
    ("post", "/stats/reset"),
    ("get", "/stats/patterns"),
    ("get", "/health"),
];

/// Starts `n` tasks at once, task `i` running `task(shared.clone(), i)`: a test's many
/// concurrent clients. Wait for them with `join_all`.
pub fn spawn_each<A, T, F>(
    shared: &A,
    n: usize,
    task: impl Fn(A, usize) -> F,
) -> tokio::task::JoinSet<T>
where
    A: Clone,
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        set.spawn(task(shared.clone(), i));
    }
    set
}

/// `("METHOD /path", body JSON text or empty)` as a method, a path and a body.
fn parse_request<'a>(request: &'a str, body: &str) -> (Method, &'a str, Option<Value>) {
    let (method, path) = request.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let body = (!body.is_empty()).then(|| serde_json::from_str(body).expect("JSON"));
    (method, path, body)
}

/// The string `field` of every object in the JSON array `list` (keys of a listing, ids of
/// tasks).
pub fn strings(list: &Value, field: &str) -> Vec<String> {
    let items = list.as_array().expect("a JSON array");
    items
        .iter()
        .map(|item| item[field].as_str().expect("a string field").to_owned())
        .collect()
}

/// `redis-server` arguments for a user `app` (password `app-pass`) that may touch only the
/// keys of the default prefix, with the default user off: a stray key is a NOPERM.
pub const ACL_APP_USER: [&str; 10] = [
    "--user",
    "default",
    "off",
    "--user",
    "app",
    "on",
    ">app-pass",
    "~demo_api:*",
    "&*",
    "+@all",
];

/// A route template of [`ROUTES`] with a sample value in each path parameter.
pub fn concrete(path: &str) -> String {
    path.replace("{key}", "k")
        .replace("{user_id}", "u")
        .replace("{resource}", "r")
        .replace("{name}", "q")
}

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

/// Where [`with_panicking_route`] mounts its route.
pub const PANIC_PATH: &str = "/test-only/panic";

/// `router` plus a route that panics, wrapped by the same shared layers as every function
/// and the runner (`shared::http::finish`, whose panic guard is under test). Test-only: no
/// production router has such a route.
pub fn with_panicking_route(router: Router, config: &Config) -> Router {
    let panicking = Router::new().route(
        PANIC_PATH,
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("a deliberate bug in a handler");
            }
            "unreachable"
        }),
    );
    shared::http::finish(router.merge(panicking), config)
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

/// Whether this run puts each [`TestApp`] on a Redis Cluster (`API_TEST_REDIS=cluster`).
pub fn cluster_run() -> bool {
    std::env::var("API_TEST_REDIS").is_ok_and(|v| v == "cluster")
}

/// The Redis a [`TestApp`] owns: one server, or a whole cluster.
pub enum TestRedis {
    /// One `redis-server`.
    Single(RedisProcess),
    /// A Redis Cluster (in an `API_TEST_REDIS=cluster` run).
    Cluster(topology::RedisCluster),
    /// Servers the test holds itself (e.g. a Sentinel group), see [`TestApp::from_state`].
    Elsewhere,
}

impl TestRedis {
    fn single(&mut self) -> &mut RedisProcess {
        match self {
            Self::Single(process) => process,
            _ => panic!("this test needs one Redis: check TestApp::on_cluster()"),
        }
    }

    /// Kills the one server (as a crash would).
    pub fn stop(&mut self) {
        self.single().stop();
    }

    /// Starts the one server again, empty, on the same port.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.single().restart()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Single(process) => process.port(),
            _ => panic!("this test needs one Redis: check TestApp::on_cluster()"),
        }
    }

    /// Its URL (a seed node's, with the password, on a cluster).
    pub fn url(&self) -> String {
        match self {
            Self::Single(process) => process.url(),
            Self::Cluster(cluster) => cluster.url(),
            Self::Elsewhere => panic!("the test holds its servers itself"),
        }
    }
}

/// A direct connection to a test's Redis, whichever its topology: one server's multiplexed
/// connection, or a cluster connection (which routes each key to its node and sends
/// `KEYS`, `DBSIZE`, `SCRIPT FLUSH` to every primary).
#[derive(Clone)]
pub enum RawRedis {
    /// One server.
    Single(redis::aio::MultiplexedConnection),
    /// A cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for RawRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            // A test's set-up pipeline may span slots: send its commands one by one.
            Self::Cluster(c) if !pipeline.is_transaction() => {
                let mut c = c.clone();
                Box::pin(async move {
                    let mut values = Vec::new();
                    for cmd in pipeline.cmd_iter() {
                        values.push(c.req_packed_command(cmd).await?);
                    }
                    Ok(values)
                })
            }
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The merged router of every function on a private Redis.
pub struct TestApp {
    /// The private Redis (stop/restart it to test failures).
    pub redis: TestRedis,
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

    /// A fresh Redis (a fresh cluster in an `API_TEST_REDIS=cluster` run) and the test
    /// configuration changed by `adjust`.
    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        if cluster_run() {
            let cluster = tokio::task::spawn_blocking(|| {
                topology::RedisCluster::start(Some("cluster-test-pw"))
            })
            .await
            .expect("start a cluster");
            return Self::on_a_cluster(cluster, adjust);
        }
        Self::build(start_redis(&[]), adjust)
    }

    /// The app in `REDIS_MODE=cluster` on `cluster`, seeded with all its nodes.
    pub fn on_a_cluster(cluster: topology::RedisCluster, adjust: impl FnOnce(&mut Config)) -> Self {
        let seeds = cluster.seeds();
        let url = cluster.url();
        let mut config = Config::from_lookup(move |name| match name {
            "REDIS_URL" => Some(url.clone()),
            "REDIS_MODE" => Some("cluster".into()),
            "REDIS_CLUSTER_NODES" => Some(seeds.clone()),
            "REDIS_CONNECT_TIMEOUT_MS" => Some("250".into()),
            // A cluster call may wait for a slot-map refresh: a little more room.
            "REDIS_RESPONSE_TIMEOUT_MS" => Some("2000".into()),
            _ => None,
        })
        .expect("cluster test config");
        adjust(&mut config);
        Self::assemble(TestRedis::Cluster(cluster), config)
    }

    /// The merged router on a state the test built (its servers are the test's to keep).
    pub fn from_state(state: AppState) -> Self {
        let router = local_runner::app(state.clone());
        Self {
            redis: TestRedis::Elsewhere,
            state,
            router,
        }
    }

    /// Whether this app runs on a cluster (tests of one server's failures skip there).
    pub fn on_cluster(&self) -> bool {
        matches!(self.redis, TestRedis::Cluster(_))
    }

    /// Whether to skip a test of one server's failures: on a cluster, after saying why
    /// (`cluster.rs` tests a cluster primary's failure instead).
    pub fn skip_on_cluster(&self, why: &str) -> bool {
        let skip = self.on_cluster();
        if skip {
            eprintln!("skipped on the cluster run: {why}");
        }
        skip
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
        Self::assemble(TestRedis::Single(redis), config)
    }

    fn assemble(redis: TestRedis, config: Config) -> Self {
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
        self.call_with(method, path, body, &[]).await
    }

    /// [`TestApp::call`] with `Idempotency-Key: key`.
    pub async fn keyed(&self, method: Method, path: &str, body: Option<Value>, key: &str) -> Reply {
        self.call_with(method, path, body, &[("idempotency-key", key)])
            .await
    }

    /// The same keyed request twice: the second must be the first's outcome, replayed
    /// (same status and body, `Idempotent-Replayed: true` on it alone). The second answer.
    pub async fn twice(&self, method: Method, path: &str, body: Option<Value>, key: &str) -> Reply {
        let first = self.keyed(method.clone(), path, body.clone(), key).await;
        let second = self.keyed(method.clone(), path, body, key).await;
        assert_eq!(
            first.status, second.status,
            "{method} {path}: {first:?} / {second:?}"
        );
        assert_eq!(first.body, second.body, "{method} {path}");
        assert_eq!(
            first.header("idempotent-replayed"),
            "",
            "{method} {path}: {first:?}"
        );
        assert_eq!(
            second.header("idempotent-replayed"),
            "true",
            "{method} {path}: {second:?}"
        );
        second
    }

    /// [`TestApp::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let request = json_request(method, path, body.as_ref(), headers).expect("request");
        self.request(request).await
    }

    /// Each line `METHOD /path | body | field` of `table` is answered 422 naming `field`
    /// (`body`: JSON text, or nothing for no body).
    pub async fn assert_422s(&self, table: &str) {
        for line in table.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let [request, body, field] = cells[..] else {
                panic!("not `METHOD /path | body | field`: {line}");
            };
            let (method, path, body) = parse_request(request, body);
            let r = self.call(method, path, body).await;
            assert_eq!(r.status, 422, "{line}: {r:?}");
            r.assert_problem(422, Some(field));
        }
    }

    /// Sends `request` (`METHOD /path`) with `body` (JSON text, or empty for none) every
    /// 100 ms, at most `tries` times, until it is answered `status`; whether it was (after
    /// Redis comes back, say).
    pub async fn until_status(&self, request: &str, body: &str, status: u16, tries: u32) -> bool {
        let (method, path, body) = parse_request(request, body);
        for _ in 0..tries {
            if self.call(method.clone(), path, body.clone()).await.status == status {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
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
    pub async fn redis_conn(&self) -> RawRedis {
        match &self.redis {
            TestRedis::Single(process) => RawRedis::Single(
                redis::Client::open(process.url())
                    .expect("client")
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to test redis"),
            ),
            TestRedis::Elsewhere => panic!("the test holds its servers itself"),
            TestRedis::Cluster(cluster) => RawRedis::Cluster(
                redis::cluster::ClusterClient::new(vec![cluster.url()])
                    .expect("cluster client")
                    .get_async_connection()
                    .await
                    .expect("connect to the test cluster"),
            ),
        }
    }

    /// Every key `GET /cache?{query}` lists, page after page until the cursor is 0, in the
    /// order listed (a key listed twice appears twice), and how many pages that took.
    pub async fn list_cache(&self, query: &str) -> (Vec<String>, usize) {
        let (mut listed, mut pages, mut cursor) = (Vec::new(), 0, 0u64);
        loop {
            let r = self.get(&format!("/cache?{query}&cursor={cursor}")).await;
            assert_eq!(r.status, 200, "{r:?}");
            let page = strings(&r.body["keys"], "key");
            assert_eq!(r.body["count"].as_u64(), Some(page.len() as u64), "{r:?}");
            listed.extend(page);
            pages += 1;
            cursor = r.body["cursor"].as_u64().expect("a cursor");
            if cursor == 0 {
                return (listed, pages);
            }
            assert!(pages < 1_000, "the listing does not end");
        }
    }

    /// Every key of the test's Redis that matches `pattern`, sorted.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut conn = self.redis_conn().await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .expect("KEYS");
        keys.sort();
        keys
    }

    /// Closes every client connection of the test's Redis (the API's among them) but the
    /// one that asks; returns how many it closed.
    pub async fn kill_clients(&self) -> u64 {
        let mut admin = self.redis_conn().await;
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query_async(&mut admin)
            .await
            .expect("CLIENT KILL")
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

/// `method path` with a JSON `body` through `router`: the status and the body's text,
/// untouched (no JSON parsing in between).
pub async fn raw(router: &Router, method: Method, path: &str, body: &str) -> (u16, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
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

/// `method path` with `headers` and, if any, `body` as JSON (with its content type).
pub fn json_request(
    method: Method,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Result<Request<Body>, http::Error> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    match body {
        Some(v) => builder
            .header("content-type", "application/json")
            .body(Body::from(v.to_string())),
        None => builder.body(Body::empty()),
    }
}
