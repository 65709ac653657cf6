//! The proxy itself, against a plain Redis client: a dropped reply means the command ran;
//! a reset before sending means it did not, after sending that it did; a black hole holds
//! traffic until it closes; `reset_all` cuts live connections.

use std::time::Duration;

use api_tests::proxy::{
    FaultProxy,
    resp::{self, arg_bytes},
};
use redis::AsyncCommands;

use super::support::seed;

/// Hang guard only.
const GUARD: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_drop_reply_runs_the_command_and_drops_the_connection() {
    let redis = api_tests::start_redis(&[]);
    let proxy = FaultProxy::to_port(redis.port()).await;
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut via_proxy = client.get_multiplexed_async_connection().await.unwrap();
    let mut direct = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();

    let _: () = via_proxy.set("before", 1).await.unwrap();
    proxy.drop_reply_of_next(&arg_bytes(b"victim"));
    let lost: redis::RedisResult<()> = via_proxy.set("victim", 42).await;
    let e = lost.expect_err("the reply was dropped, yet the client got one");
    assert!(e.is_connection_dropped() || e.is_io_error(), "{e:?}");
    assert!(!proxy.drop_armed());
    assert_eq!(proxy.stats().dropped_replies, 1);
    // It ran.
    let stored: Option<i64> = direct.get("victim").await.unwrap();
    assert_eq!(stored, Some(42));
    // A new connection goes through untouched.
    let mut again = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = again.set("after", 2).await.unwrap();
    let after: i64 = direct.get("after").await.unwrap();
    assert_eq!(after, 2);
}

/// A reset before forwarding means the command did not run; after forwarding, that it ran.
/// One INCR per raw connection (no handshake, so every fault hits an INCR) makes the count
/// exact: the acknowledged INCRs plus those reset after they were sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_random_resets_strike_before_and_after_commands() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seed = seed();
    let redis = api_tests::start_redis(&[]);
    let proxy = FaultProxy::to_port(redis.port()).await;
    let mut direct = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    proxy.set_random_resets(0.3, seed);
    let incr = resp::command(&[b"INCR", b"n"]);
    let (mut acknowledged, mut reset) = (0u64, 0u64);
    for _ in 0..200 {
        let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        conn.write_all(&incr).await.unwrap();
        let mut reply = Vec::new();
        // Ends with the reply's CRLF, or at the reset (EOF or an error).
        let answered = tokio::time::timeout(GUARD, async {
            let mut buf = [0u8; 64];
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => reply.extend_from_slice(&buf[..n]),
                }
                if reply.ends_with(b"\r\n") {
                    return true;
                }
            }
        })
        .await
        .expect("neither answered nor reset");
        if answered {
            assert!(reply.starts_with(b":"), "{reply:?}");
            acknowledged += 1;
        } else {
            reset += 1;
        }
    }
    proxy.stop_random_resets();
    let stats = proxy.stats();
    let n: u64 = direct.get("n").await.unwrap();
    let context = format!("seed {seed}: n={n}, acknowledged {acknowledged}, {stats:?}");
    assert!(
        stats.resets_before_send > 0 && stats.resets_after_send > 0,
        "{context}"
    );
    assert_eq!(
        reset,
        stats.resets_before_send + stats.resets_after_send,
        "{context}"
    );
    assert_eq!(n, acknowledged + stats.resets_after_send, "{context}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_black_hole_holds_and_reset_all_cuts() {
    let redis = api_tests::start_redis(&[]);
    let proxy = FaultProxy::to_port(redis.port()).await;
    let client = redis::Client::open(proxy.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    proxy.black_hole(true);
    let mut held = conn.clone();
    let pending = tokio::spawn(async move { held.set::<_, _, ()>("held", 1).await });
    // Nothing gets through while the hole is open (the client's own time-out ends the wait).
    let waited = tokio::time::timeout(Duration::from_millis(300), async {
        while !pending.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_err() || pending.await.unwrap().is_err());
    proxy.black_hole(false);
    let _: () = tokio::time::timeout(GUARD, conn.set("flows", 1))
        .await
        .unwrap()
        .unwrap();

    assert_eq!(proxy.open_connections(), 1);
    proxy.reset_all();
    let cut: redis::RedisResult<()> = conn.set("cut", 1).await;
    assert!(cut.is_err(), "a reset connection still answered");
    assert!(proxy.stats().forced_resets >= 1, "{:?}", proxy.stats());
}
