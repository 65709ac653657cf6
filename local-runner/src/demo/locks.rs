//! The tour's lock steps beyond the mutex: fencing tokens at work (Kleppmann's scenario, a
//! paused holder's late write refused) and a counting semaphore.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Tour;

impl Tour<'_> {
    /// Holder A pauses past its lock's TTL, B takes the lock and writes, A wakes up and
    /// writes with its older fencing token: the store refuses it (409).
    pub(super) async fn fencing(&mut self) -> Result<(), String> {
        self.note(
            "Fencing tokens: the store the lock protects keeps the highest token it has seen \
             and refuses older ones. Holder A takes the lock for 1 s:",
        )?;
        let a = self
            .call("POST", "/lock/demo-ledger/acquire?ttl=1", None, &[201])
            .await?;
        self.note("A pauses (a GC, a swap) past its TTL; the lock expires without A knowing...")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (_, status) = self.send("GET", "/lock/demo-ledger", None).await?;
            if status["locked"] == false {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "step {}: the 1 s lock on demo-ledger never expired: {status}",
                    self.step
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.note("...so holder B gets it, with a larger fencing token, and writes:")?;
        let b = self
            .call("POST", "/lock/demo-ledger/acquire?ttl=10", None, &[201])
            .await?;
        let write = |token: &serde_json::Value, who: &str| {
            Some(json!({"fencing_token": token, "value": format!("written by {who}")}))
        };
        self.call(
            "PUT",
            "/lock/demo-ledger/protected",
            write(&b["fencing_token"], "B"),
            &[200],
        )
        .await?;
        self.note("A wakes up, still believing it holds the lock, and writes with its token:")?;
        self.call(
            "PUT",
            "/lock/demo-ledger/protected",
            write(&a["fencing_token"], "A"),
            &[409],
        )
        .await?;
        self.call("GET", "/lock/demo-ledger/protected", None, &[200])
            .await?;
        self.call(
            "POST",
            "/lock/demo-ledger/release",
            Some(json!({"token": b["token"]})),
            &[200],
        )
        .await?;
        Ok(())
    }

    /// Two permits, three contenders: the third is refused until a permit is given back.
    pub(super) async fn semaphore(&mut self) -> Result<(), String> {
        self.note(
            "A counting semaphore: at most `permits` holders at once (a sorted set of holders \
             scored by expiry, so a dead holder's permit frees itself):",
        )?;
        let path = "/semaphore/demo-pool/acquire?permits=2&ttl=10";
        let first = self.call("POST", path, None, &[201]).await?;
        let second = self.call("POST", path, None, &[201]).await?;
        self.call("POST", path, None, &[409]).await?;
        self.call("GET", "/semaphore/demo-pool", None, &[200])
            .await?;
        for grant in [first, second] {
            self.call(
                "POST",
                "/semaphore/demo-pool/release",
                Some(json!({"token": grant["token"]})),
                &[200],
            )
            .await?;
        }
        Ok(())
    }
}
