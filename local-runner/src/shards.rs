//! Thread per core: the runner serves on one thread per CPU, each with a single-threaded
//! tokio runtime, its own copy of the router and its own Redis connection.
//!
//! One loop accepts ([`crate::server::accept`], on the main thread) and hands each new
//! connection to the thread with the fewest open connections. From then on the connection
//! stays on that thread, and the Redis connection its requests use is driven on that thread
//! too, so a request never wakes another thread: no work stealing, no cross-thread wake-ups
//! between the HTTP task and the task that writes to Redis. (With a multi-threaded runtime
//! and one shared Redis connection, those wake-ups and their context switches were the
//! largest share of the runner's CPU time per request; the README's Benchmarks section has
//! the measurements.) Only accepting a connection crosses threads, once per connection.
//!
//! What the process promises stays the process's: the connection cap
//! (`MAX_CLIENT_CONNECTIONS`) is applied by the one accept loop, the in-flight cap
//! (`MAX_IN_FLIGHT_REQUESTS`) is one semaphore shared by every thread's router, and a stop
//! signal drains every thread.

use std::{future::Future, io, num::NonZeroUsize, sync::Arc, thread::JoinHandle};

use shared::AppState;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
};

use crate::server::{Accepted, Limits, Worker, accept, serve_connections, worker};

/// How many server threads: one per CPU this process may run on.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The server threads beyond the calling one, started and connected to Redis; serving once
/// [`Running::serve`] accepts and runs the calling thread's share.
pub struct Running {
    state: AppState,
    listener: TcpListener,
    in_flight: Arc<Semaphore>,
    workers: Vec<Worker>,
    incoming: mpsc::UnboundedReceiver<Accepted>,
    others: Vec<JoinHandle<io::Result<()>>>,
}

/// Starts `threads - 1` server threads, each with its own runtime and its own [`AppState`]
/// built from `state`'s settings, and returns once each has connected to Redis (or at the
/// first error: a thread that cannot connect is a start-up failure, as the first
/// connection is). `state` serves on the calling thread, in [`Running::serve`].
pub async fn start(
    state: AppState,
    listener: TcpListener,
    threads: usize,
) -> Result<Running, String> {
    let in_flight = Arc::new(Semaphore::new(state.config.max_in_flight_requests));
    let (first, incoming) = worker();
    let mut running = Running {
        state,
        listener,
        in_flight,
        workers: vec![first],
        incoming,
        others: Vec::new(),
    };
    // On an error, dropping `running` drops the workers' handles: the threads started so
    // far see their connections end and stop.
    for i in 1..threads {
        let (worker, incoming) = worker();
        let thread = running.spawn(i, incoming).await?;
        running.workers.push(worker);
        running.others.push(thread);
    }
    Ok(running)
}

impl Running {
    /// Starts server thread `i`, serving what arrives on `incoming`, and waits until it has
    /// connected to Redis.
    async fn spawn(
        &self,
        i: usize,
        incoming: mpsc::UnboundedReceiver<Accepted>,
    ) -> Result<JoinHandle<io::Result<()>>, String> {
        let config = (*self.state.config).clone();
        let header_read_timeout = Limits::from(&*self.state.config).header_read_timeout;
        let in_flight = self.in_flight.clone();
        let (ready, connected) = oneshot::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("server-{i}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let state = match AppState::connect(config).await {
                        Ok(state) => state,
                        Err(e) => {
                            let _ = ready.send(Err(format!("cannot reach Redis: {e}")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    let stopping = state.shutdown.clone();
                    let app = crate::app_sharing(state, in_flight);
                    serve_connections(incoming, app, header_read_timeout, move || {
                        stopping.trigger();
                    })
                    .await;
                });
                Ok(())
            })
            .map_err(|e| format!("cannot start server thread {i}: {e}"))?;
        match connected.await {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(why)) => Err(format!("server thread {i}: {why}")),
            Err(_) => Err(format!(
                "server thread {i} ended at start: {:?}",
                thread.join()
            )),
        }
    }

    /// Accepts and serves until `shutdown` resolves, then stops accepting and returns once
    /// every thread has drained (requests in flight finished, idle connections closed).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Running {
            state,
            listener,
            in_flight,
            workers,
            incoming,
            others,
        } = self;
        let slots = Arc::new(Semaphore::new(state.config.max_client_connections));
        let header_read_timeout = Limits::from(&*state.config).header_read_timeout;
        let stopping = state.shutdown.clone();
        let app = crate::app_sharing(state, in_flight);
        let here = tokio::spawn(serve_connections(
            incoming,
            app,
            header_read_timeout,
            move || stopping.trigger(),
        ));
        // Returns at `shutdown`, dropping the workers' handles: every thread then drains.
        accept(listener, slots, workers, shutdown).await;
        here.await.map_err(io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            for thread in others {
                thread
                    .join()
                    .map_err(|_| io::Error::other("a server thread panicked"))??;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}
