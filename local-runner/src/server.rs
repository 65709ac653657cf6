//! The runner's HTTP server loop: what protects it from slow and abusive clients.
//!
//! `axum::serve` has no header-read timeout (hyper's needs a timer, which it does not set)
//! and no cap on connections, so a client that opens thousands of connections and sends
//! half a request head on each keeps them all open for good. This loop is `axum::serve`'s,
//! with three bounds from [`Limits`]:
//!
//! - **Header-read timeout** (`HEADER_READ_TIMEOUT_MS`): hyper's HTTP/1 `header_read_timeout`.
//!   Its timer starts whenever the connection waits for a request head — right after the
//!   accept, and again after each answer — and is not reset by bytes that trickle in. So it
//!   closes a slowloris connection and an idle keep-alive connection alike, after at most
//!   this long.
//! - **Connection cap** (`MAX_CLIENT_CONNECTIONS`): at the cap the loop stops accepting
//!   until a connection closes. New connections then wait in the kernel's listen queue
//!   (they are queued, not refused), and the header-read timeout guarantees slots come free.
//!   Open file descriptors stay bounded.
//! - **Stalled connections**: a connection whose socket moves no byte for
//!   `HEADER_READ_TIMEOUT_MS` while none of its requests is being handled (nothing sent, half
//!   an HTTP/2 preface, an idle HTTP/2 connection, a client that stops reading its answers)
//!   is asked to close, and dropped if it still does not move ([`crate::watchdog`]). The
//!   same bound ends a graceful stop that a stalled client would otherwise hold up.
//! - Requests hyper refuses itself (a request target over 65,534 bytes, a head too large,
//!   a malformed head) get problem+json bodies like every other error
//!   ([`crate::parse_errors`]).
//! - The **in-flight request cap** (`MAX_IN_FLIGHT_REQUESTS`) is a layer of the router
//!   ([`crate::app`]): past it, a `503` problem with `Retry-After` at once.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
    service::TowerToHyperService,
};
use shared::{Config, config};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
};
use tower::ServiceExt;

use crate::watchdog::{Activity, Busy, Watch, Watched};

/// The connection-level bounds of [`serve_with`].
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest wait for a whole request head (from accept, or from the previous answer).
    pub header_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    /// The settings' defaults.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_millis(config::DEFAULT_HEADER_READ_TIMEOUT_MS),
            max_connections: config::DEFAULT_MAX_CLIENT_CONNECTIONS,
        }
    }
}

impl From<&Config> for Limits {
    fn from(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            max_connections: config.max_client_connections,
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; then closes the
/// listener (new connections are refused), lets the requests in flight finish, closes idle
/// connections and returns once every connection has ended. All on the calling runtime;
/// the runner's binary spreads the connections over one thread per CPU instead
/// ([`crate::shards`]), with the same [`accept`] and [`serve_connections`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (worker, incoming) = worker();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let served = tokio::spawn(serve_connections(
        incoming,
        app,
        limits.header_read_timeout,
        || {},
    ));
    accept(listener, slots, vec![worker], shutdown).await;
    served.await.map_err(std::io::Error::other)
}

/// A connection [`accept`] took, with what it holds until it closes: a slot of the
/// connection cap and a place in its worker's count.
pub struct Accepted {
    stream: std::net::TcpStream,
    _slot: OwnedSemaphorePermit,
    _counted: Counted,
}

/// One place in a [`Worker`]'s count of open connections, given back when dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Where [`accept`] hands connections to one [`serve_connections`] (one per thread), and
/// how many that one has open.
pub struct Worker {
    connections: mpsc::UnboundedSender<Accepted>,
    open: Arc<AtomicUsize>,
}

/// A [`Worker`] and the receiving end its [`serve_connections`] reads. (Unbounded: every
/// connection in it holds a slot of the connection cap, so the cap bounds it.)
pub fn worker() -> (Worker, mpsc::UnboundedReceiver<Accepted>) {
    let (connections, incoming) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicUsize::new(0));
    (Worker { connections, open }, incoming)
}

/// Accepts connections on `listener` until `shutdown` resolves, each once a slot of
/// `slots` is free (at the cap it stops accepting: new connections wait in the kernel's
/// listen queue), and hands each to the worker with the fewest open connections. Then
/// closes the listener and drops the workers' handles, which tells each worker to drain.
pub async fn accept(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    workers: Vec<Worker>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning, as axum::serve does.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Moved to the worker's runtime as a plain socket (its own reactor registers it).
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let Some(worker) = workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
        else {
            break;
        };
        worker.open.fetch_add(1, Ordering::Relaxed);
        let counted = Counted(worker.open.clone());
        let _ = worker.connections.send(Accepted {
            stream,
            _slot: slot,
            _counted: counted,
        });
    }
}

/// Serves the connections handed to `incoming`, on the calling runtime, until every
/// [`Worker`] handle of it is gone; then calls `closing`, lets the requests in flight
/// finish, closes idle connections and returns once every connection has ended.
pub async fn serve_connections(
    mut incoming: mpsc::UnboundedReceiver<Accepted>,
    app: Router,
    header_read_timeout: Duration,
    closing: impl FnOnce(),
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    // Each connection task holds a receiver: the sender's `closed()` resolves when all are gone.
    let (draining_tx, draining_rx) = tokio::sync::watch::channel(false);
    while let Some(Accepted {
        stream,
        _slot: slot,
        _counted: counted,
    }) = incoming.recv().await
    {
        let Ok(stream) = TcpStream::from_std(stream) else {
            continue;
        };
        let activity = Activity::new();
        let busy = activity.clone();
        let service = app
            .clone()
            .map_request(|request: http::Request<hyper::body::Incoming>| request.map(Body::new))
            .map_future(move |answer| {
                let busy = Busy::new(busy.clone());
                async move {
                    let answer = answer.await;
                    drop(busy);
                    answer
                }
            });
        let builder = builder.clone();
        let mut draining = draining_rx.clone();
        tokio::spawn(async move {
            let _held = (slot, counted);
            let connection = builder.serve_connection_with_upgrades(
                // hyper's own answers to unparsable requests (414, 431, 400) get problem bodies.
                TokioIo::new(Watched::new(
                    crate::parse_errors::ProblemIo::new(stream),
                    activity.clone(),
                )),
                TowerToHyperService::new(service),
            );
            let mut connection = std::pin::pin!(connection);
            let mut asked = false;
            // Stalled connections (see `crate::watchdog`): asked to close, then dropped.
            let period = header_read_timeout / 4;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            let mut watch = Watch::new(activity, header_read_timeout);
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    changed = draining.changed(), if !asked => {
                        asked = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                    _ = tick.tick() => {
                        if watch.stalled() {
                            if asked {
                                break;
                            }
                            asked = true;
                            watch.restart();
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(draining);
        });
    }
    closing();
    drop(draining_rx);
    let _ = draining_tx.send(true);
    draining_tx.closed().await;
}

/// Errors of one connection that has gone already (the listener itself is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}
