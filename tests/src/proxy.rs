//! A fault-injecting TCP proxy between the API and a real `redis-server`, to test what the
//! API promises when the network fails mid-command: a command that Redis ran but whose reply
//! never came back, a connection reset before a command reached Redis, a slow or silent link.
//!
//! The proxy cuts the client's byte stream into RESP commands and the server's into replies
//! ([`resp`]), so a fault hits one whole command, and it counts replies (Redis answers a
//! connection's commands in order) so that "the reply of that command" is known exactly.
//! Every control is thread-safe and takes effect while traffic flows:
//!
//! - [`FaultProxy::drop_reply_of_next`]: the next command containing a pattern is forwarded
//!   and runs; its reply and everything after it on that connection are discarded and the
//!   connection is reset: the client sees a dropped connection for a command that DID run.
//! - [`FaultProxy::set_random_resets`]: with a seeded RNG, each command has probability `p` of
//!   resetting its connection, half of the time before it is forwarded (it did not run), half
//!   after it ran but before its reply (the reply is lost).
//! - [`FaultProxy::set_latency`], [`FaultProxy::black_hole`], [`FaultProxy::reset_all`].
//!
//! Resets are aborts (`SO_LINGER` 0, so the peer gets an RST, as from a crashed middlebox),
//! not orderly closes. The counters ([`FaultProxy::stats`]) let tests check that the faults
//! they asked for happened.

pub mod apps;
mod pump;
pub mod resp;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::SeqCst},
    },
    time::Duration,
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// How long a connection whose reply is to be dropped waits for that reply before being
/// reset anyway (Redis stopped, or a black hole): a bound, so no proxy task waits forever.
const REPLY_WAIT: Duration = Duration::from_secs(5);

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Commands forwarded to Redis.
    pub frames_forwarded: u64,
    /// Replies forwarded to the client.
    pub replies_forwarded: u64,
    /// Random resets before the command was forwarded (it did not run).
    pub resets_before_send: u64,
    /// Random resets after the command ran, its reply discarded.
    pub resets_after_send: u64,
    /// Times [`FaultProxy::drop_reply_of_next`] fired.
    pub dropped_replies: u64,
    /// Connections reset by [`FaultProxy::reset_all`].
    pub forced_resets: u64,
}

impl ProxyStats {
    /// Every reset of any kind.
    pub fn resets(&self) -> u64 {
        self.resets_before_send + self.resets_after_send + self.dropped_replies + self.forced_resets
    }

    /// What happened since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            connections: self.connections - earlier.connections,
            frames_forwarded: self.frames_forwarded - earlier.frames_forwarded,
            replies_forwarded: self.replies_forwarded - earlier.replies_forwarded,
            resets_before_send: self.resets_before_send - earlier.resets_before_send,
            resets_after_send: self.resets_after_send - earlier.resets_after_send,
            dropped_replies: self.dropped_replies - earlier.dropped_replies,
            forced_resets: self.forced_resets - earlier.forced_resets,
        }
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    frames_forwarded: AtomicU64,
    replies_forwarded: AtomicU64,
    resets_before_send: AtomicU64,
    resets_after_send: AtomicU64,
    dropped_replies: AtomicU64,
    forced_resets: AtomicU64,
}

/// Where a random reset strikes.
#[derive(Debug, Clone, Copy)]
enum Fault {
    BeforeSend,
    AfterSend,
}

struct Inner {
    upstream: SocketAddr,
    latency_us: AtomicU64,
    black_hole: watch::Sender<bool>,
    drop_pattern: Mutex<Option<Vec<u8>>>,
    /// Probability of a reset per command, and the seeded RNG drawing them.
    random: Mutex<(f64, StdRng)>,
    /// Kill switches of the live connections.
    live: Mutex<HashMap<u64, watch::Sender<bool>>>,
    /// Connections that forward nothing any more, either way, and stay open.
    silenced: Mutex<HashSet<u64>>,
    next_id: AtomicU64,
    counters: Counters,
}

/// A running proxy; stops accepting and resets its connections when dropped.
pub struct FaultProxy {
    /// Where it listens (loopback, a free port).
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`, with no faults yet.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let inner = Arc::new(Inner {
            upstream,
            latency_us: AtomicU64::new(0),
            black_hole: watch::channel(false).0,
            drop_pattern: Mutex::new(None),
            random: Mutex::new((0.0, StdRng::seed_from_u64(0))),
            live: Mutex::new(HashMap::new()),
            silenced: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let accepting = inner.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepting.counters.connections.fetch_add(1, SeqCst);
                tokio::spawn(pump::serve(accepting.clone(), client));
            }
        });
        Self {
            addr,
            inner,
            accept,
        }
    }

    /// A proxy in front of a Redis on 127.0.0.1:`port`.
    pub async fn to_port(port: u16) -> Self {
        Self::start(SocketAddr::from(([127, 0, 0, 1], port))).await
    }

    /// `redis://127.0.0.1:port/0`: a Redis URL that goes through the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    /// Arms a one-shot fault: the next command whose bytes contain `pattern` is forwarded and
    /// runs; then its reply and everything after it from the server on that connection are
    /// discarded, and the connection is reset towards the client. Earlier replies still get
    /// through; later commands on that connection are not forwarded.
    /// [`resp::arg_bytes`] makes a pattern matching one exact argument.
    pub fn drop_reply_of_next(&self, pattern: &[u8]) {
        *lock(&self.inner.drop_pattern) = Some(pattern.to_vec());
    }

    /// Whether a [`Self::drop_reply_of_next`] is still waiting for its command.
    pub fn drop_armed(&self) -> bool {
        lock(&self.inner.drop_pattern).is_some()
    }

    /// Delay added before each forwarded chunk, both directions.
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.inner.latency_us.store(us, SeqCst);
    }

    /// Resets connections at random: each command has probability `p` (0 turns this off) of
    /// resetting its connection, equally often before forwarding it (it does not run) or after
    /// it ran, before its reply. Draws come from an RNG seeded with `seed`.
    pub fn set_random_resets(&self, p: f64, seed: u64) {
        *lock(&self.inner.random) = (p.clamp(0.0, 1.0), StdRng::seed_from_u64(seed));
    }

    /// No more random resets.
    pub fn stop_random_resets(&self) {
        lock(&self.inner.random).0 = 0.0;
    }

    /// On: connections stay open but nothing is forwarded either way (data waits, as on a
    /// partitioned network; clients time out). Off: what waited flows again.
    pub fn black_hole(&self, on: bool) {
        self.inner.black_hole.send_replace(on);
    }

    /// The connections open now go silent for good: they stay open, and what either side
    /// sends is swallowed (a host gone without a reset, a partition, an endpoint moved to
    /// another node). Connections opened later are forwarded as usual.
    pub fn silence_open_connections(&self) {
        let live = lock(&self.inner.live);
        lock(&self.inner.silenced).extend(live.keys().copied());
    }

    /// Resets every open connection now.
    pub fn reset_all(&self) {
        let live = lock(&self.inner.live);
        for kill in live.values() {
            if !kill.send_replace(true) {
                self.inner.counters.forced_resets.fetch_add(1, SeqCst);
            }
        }
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        lock(&self.inner.live).len()
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.inner.counters;
        ProxyStats {
            connections: c.connections.load(SeqCst),
            frames_forwarded: c.frames_forwarded.load(SeqCst),
            replies_forwarded: c.replies_forwarded.load(SeqCst),
            resets_before_send: c.resets_before_send.load(SeqCst),
            resets_after_send: c.resets_after_send.load(SeqCst),
            dropped_replies: c.dropped_replies.load(SeqCst),
            forced_resets: c.forced_resets.load(SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.black_hole(false);
        self.reset_all();
    }
}

/// A poisoned lock only means another test thread panicked: the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn is_silenced(&self, id: u64) -> bool {
        lock(&self.silenced).contains(&id)
    }

    /// Takes the armed drop pattern if `frame` matches it (one-shot).
    fn take_drop(&self, frame: &[u8]) -> bool {
        let mut armed = lock(&self.drop_pattern);
        if armed.as_deref().is_some_and(|p| resp::contains(frame, p)) {
            *armed = None;
            return true;
        }
        false
    }

    fn roll(&self) -> Option<Fault> {
        let mut random = lock(&self.random);
        let (p, rng) = &mut *random;
        if *p <= 0.0 || !rng.random_bool(*p) {
            return None;
        }
        Some(if rng.random_bool(0.5) {
            Fault::BeforeSend
        } else {
            Fault::AfterSend
        })
    }

    /// Waits out a black hole, then the configured latency.
    async fn gate(&self) {
        let mut hole = self.black_hole.subscribe();
        let _ = hole.wait_for(|on| !*on).await;
        let us = self.latency_us.load(SeqCst);
        if us > 0 {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
    }
}
