//! Closes connections that make no progress while no request of theirs is being handled.
//!
//! hyper's HTTP/1 `header_read_timeout` covers a connection waiting for a request head, but
//! not a connection that has not yet said which protocol it speaks (nothing sent, or half
//! the HTTP/2 preface), an HTTP/2 connection with no open stream, or a client that stops
//! reading its answers. Each would keep a slot of `MAX_CLIENT_CONNECTIONS` for good (so a
//! few of them lock every other client out), and a stalled one would keep a graceful stop
//! from ever finishing.
//!
//! So every connection carries an [`Activity`]: a count of its socket's reads and writes
//! that moved bytes ([`Watched`] counts them) and how many of its requests are being handled
//! ([`Busy`]). Its task looks at it a few times per `HEADER_READ_TIMEOUT_MS` ([`Watch`]):
//! when nothing has moved and no handler has run for that long, the server asks the
//! connection to close gracefully (HTTP/2: `GOAWAY`); when it still makes no progress for
//! as long again, it is dropped. A request that waits on its handler (the lock demo holds
//! for up to 25 s) is never cut: `REQUEST_TIMEOUT_MS` bounds that.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// What one connection is doing: how many times its socket has moved bytes (a counter, so
/// that noting progress costs no clock read on the request path), how many of its requests
/// are being handled.
#[derive(Debug, Default)]
pub struct Activity {
    progress: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Notes progress.
    pub fn touch(&self) {
        self.progress.fetch_add(1, Ordering::Relaxed);
    }
}

/// Watches one [`Activity`] from the connection's task, one look per tick: stalled once no
/// progress was noted and no request was being handled at every look for `limit`.
#[derive(Debug)]
pub struct Watch {
    activity: Arc<Activity>,
    seen: u64,
    quiet_since: Option<Instant>,
    limit: Duration,
}

impl Watch {
    /// Watches `activity` with `limit`.
    pub fn new(activity: Arc<Activity>, limit: Duration) -> Self {
        Self {
            activity,
            seen: 0,
            quiet_since: None,
            limit,
        }
    }

    /// One look, at a tick: whether the connection has been stalled for `limit`.
    pub fn stalled(&mut self) -> bool {
        let progress = self.activity.progress.load(Ordering::Relaxed);
        let busy = self.activity.busy.load(Ordering::Relaxed) > 0;
        if busy || progress != self.seen {
            self.seen = progress;
            self.quiet_since = None;
            return false;
        }
        let now = Instant::now();
        let since = *self.quiet_since.get_or_insert(now);
        now.duration_since(since) >= self.limit
    }

    /// Starts the count again (after asking the connection to close).
    pub fn restart(&mut self) {
        self.quiet_since = None;
    }
}

/// One request being handled on a connection, from the call of the router until its answer
/// is ready (writing the answer is the socket's progress, watched by [`Watched`]).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Busy {
    /// Counts a request of `activity`'s connection as being handled until dropped.
    pub fn new(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A socket that notes in its [`Activity`] every read or write that moved bytes.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    /// Watches `inner` for `activity`'s connection.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.noted(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.noted(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T> Watched<T> {
    fn noted(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }
}
