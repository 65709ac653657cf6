//! A minimal AWS Lambda Runtime API, enough to run a function binary as Lambda does: the
//! binary polls `GET /runtime/invocation/next`, answers with `POST .../response` (or
//! `/error`). Tests queue events with [`RuntimeApi::invoke`] and get the response JSON.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>>;

#[derive(Clone)]
struct Shared {
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    waiters: Waiters,
}

/// The emulated Runtime API, on a free loopback port.
pub struct RuntimeApi {
    /// Where it listens: pass `host:port` as `AWS_LAMBDA_RUNTIME_API`.
    pub addr: SocketAddr,
    events: mpsc::UnboundedSender<(String, Value)>,
    waiters: Waiters,
    next_id: std::sync::atomic::AtomicU64,
}

impl RuntimeApi {
    /// Starts it.
    pub async fn start() -> Self {
        let (events, queue) = mpsc::unbounded_channel();
        let waiters: Waiters = Arc::default();
        let shared = Shared {
            queue: Arc::new(tokio::sync::Mutex::new(queue)),
            waiters: waiters.clone(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            events,
            waiters,
            next_id: 0.into(),
        }
    }

    /// Queues `event` and waits (up to `limit`) for the function's response JSON; `Err`
    /// holds what the function posted to `/error`, or why nothing came.
    pub async fn invoke(&self, event: Value, limit: Duration) -> Result<Value, Value> {
        let id = format!(
            "req-{}",
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("lock").insert(id.clone(), tx);
        self.events.send((id, event)).expect("queue");
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Value::String("runtime API dropped the invocation".into())),
            Err(_) => Err(Value::String(format!("no response within {limit:?}"))),
        }
    }
}

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    let Some((id, event)) = shared.queue.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Json(Value::Null));
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 29_000;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:test".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".into(),
    );
    (StatusCode::OK, headers, Json(event))
}

// Bodies are read as bytes: the runtime client does not always label them as JSON.
fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    if let Some(tx) = shared.waiters.lock().expect("lock").remove(&id) {
        let _ = tx.send(Ok(json_of(&body)));
    }
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    if let Some(tx) = shared.waiters.lock().expect("lock").remove(&id) {
        let _ = tx.send(Err(json_of(&body)));
    }
    StatusCode::ACCEPTED
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("function reported an init error: {}", json_of(&body));
    StatusCode::ACCEPTED
}
