//! The per-connection pumps of the fault proxy: client to server command by command (where
//! the faults strike), server to client reply by reply (counted, so the reply to drop is
//! known).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::SeqCst},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use super::{
    Fault, Inner, REPLY_WAIT, lock,
    resp::{Malformed, Splitter},
};

/// One connection's shared state between its two directions.
struct Conn {
    id: u64,
    /// The 1-based number of the reply from which everything is discarded (0: none).
    drop_from_reply: AtomicU64,
    kill: watch::Sender<bool>,
}

pub(super) async fn serve(inner: Arc<Inner>, mut client: TcpStream) {
    let Ok(mut server) = TcpStream::connect(inner.upstream).await else {
        // Redis is not there: the client sees its connection closed, as it would.
        let _ = client.set_zero_linger();
        return;
    };
    for s in [&client, &server] {
        let _ = s.set_zero_linger();
        let _ = s.set_nodelay(true);
    }
    let id = inner.next_id.fetch_add(1, SeqCst);
    let (kill, mut killed) = watch::channel(false);
    lock(&inner.live).insert(id, kill.clone());
    let conn = Conn {
        id,
        drop_from_reply: AtomicU64::new(0),
        kill,
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    // Biased, the kill first: once a connection is reset, nothing more crosses it. Polled in
    // random order, a command sent just after `reset_all` could still be forwarded and, when
    // Redis answered within the same poll, its reply too (seen once in CI).
    let outcome = tokio::select! {
        biased;
        _ = killed.wait_for(|k| *k) => Ok(()),
        r = to_server(&inner, &conn, &mut cr, &mut sw) => r,
        r = to_client(&inner, &conn, &mut sr, &mut cw) => r,
    };
    if let Err(Malformed(why)) = outcome {
        eprintln!("fault proxy: connection {id} reset, not RESP: {why}");
    }
    lock(&inner.live).remove(&id);
    // Dropping both sockets with SO_LINGER 0 sends each peer an RST.
}

/// Reads what `from` sends next into `splitter`, once the gate is open; `false` when the
/// connection is closed. What arrives while the connection is silenced is dropped.
async fn read_into(
    inner: &Inner,
    conn: &Conn,
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    buf: &mut [u8],
    splitter: &mut Splitter,
) -> bool {
    loop {
        let n = match from.read(buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if !inner.is_silenced(conn.id) {
            splitter.push(&buf[..n]);
            inner.gate().await;
            return true;
        }
    }
}

/// Client to server: command by command, where the faults strike.
async fn to_server(
    inner: &Inner,
    conn: &Conn,
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
) -> Result<(), Malformed> {
    let mut splitter = Splitter::commands();
    let mut forwarded: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while read_into(inner, conn, from, &mut buf, &mut splitter).await {
        let mut out = Vec::new();
        while let Some(frame) = splitter.next_frame()? {
            let fault = if inner.take_drop(&frame) {
                inner.counters.dropped_replies.fetch_add(1, SeqCst);
                Some(Fault::AfterSend)
            } else {
                let fault = inner.roll();
                match fault {
                    Some(Fault::BeforeSend) => &inner.counters.resets_before_send,
                    Some(Fault::AfterSend) => &inner.counters.resets_after_send,
                    None => &inner.counters.frames_forwarded,
                }
                .fetch_add(1, SeqCst);
                fault
            };
            match fault {
                None => {
                    forwarded += 1;
                    out.extend_from_slice(&frame);
                }
                Some(Fault::BeforeSend) => {
                    // Earlier commands of this read go; this one and the rest never do.
                    let _ = to.write_all(&out).await;
                    conn.kill.send_replace(true);
                    return Ok(());
                }
                Some(Fault::AfterSend) => {
                    forwarded += 1;
                    inner.counters.frames_forwarded.fetch_add(1, SeqCst);
                    // Set before the command leaves, so its reply cannot slip through.
                    conn.drop_from_reply.store(forwarded, SeqCst);
                    out.extend_from_slice(&frame);
                    let _ = to.write_all(&out).await;
                    // Forward nothing more; the other direction resets the connection once
                    // the reply has come (the command certainly ran), or after a bound.
                    tokio::time::sleep(REPLY_WAIT).await;
                    conn.kill.send_replace(true);
                    return Ok(());
                }
            }
        }
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Server to client: reply by reply, counted, so the reply to drop is known.
async fn to_client(
    inner: &Inner,
    conn: &Conn,
    from: &mut tokio::net::tcp::ReadHalf<'_>,
    to: &mut tokio::net::tcp::WriteHalf<'_>,
) -> Result<(), Malformed> {
    let mut splitter = Splitter::replies();
    let mut replies: u64 = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while read_into(inner, conn, from, &mut buf, &mut splitter).await {
        let mut out = Vec::new();
        while let Some(reply) = splitter.next_frame()? {
            // A RESP3 push is out of band: it answers no command.
            if reply.first() != Some(&b'>') {
                replies += 1;
                let drop_from = conn.drop_from_reply.load(SeqCst);
                if drop_from != 0 && replies >= drop_from {
                    let _ = to.write_all(&out).await;
                    conn.kill.send_replace(true);
                    return Ok(());
                }
                inner.counters.replies_forwarded.fetch_add(1, SeqCst);
            }
            out.extend_from_slice(&reply);
        }
        if !out.is_empty() && to.write_all(&out).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
