//! SCAN, the one way keys are listed (never `KEYS`): [`Scan`] walks a pattern in bounded
//! steps from a cursor, on one server or across a cluster's primaries. `/stats` counts and
//! `POST /stats/reset` deletes with it, and `GET /cache` pages with it.

use redis::{ErrorKind, RedisError};

use super::{Backend, Redis};

/// Bits of a cluster-wide SCAN cursor that name the primary (up to 1024 primaries); the rest
/// is that primary's own cursor.
const NODE_BITS: u32 = 10;

/// A SCAN iteration over the keys matching a pattern, from a cursor, in steps.
///
/// [`Scan::look`] runs one step at the current cursor without moving on (a caller may look
/// again with another `COUNT`), [`Scan::move_to`] moves on, and [`Scan::next_batch`] does both.
/// At most [`Scan::at_most`] moves are made, so the work per request is bounded however
/// large the keyspace; [`Scan::cursor`] is where a later iteration continues.
pub struct Scan {
    redis: Redis,
    pattern: String,
    cursor: u64,
    moves: usize,
    max_moves: usize,
}

impl Scan {
    /// An iteration from `cursor` (0: the start), without a bound on its steps.
    pub fn new(redis: &Redis, pattern: &str, cursor: u64) -> Self {
        Self {
            redis: redis.clone(),
            pattern: pattern.to_owned(),
            cursor,
            moves: 0,
            max_moves: usize::MAX,
        }
    }

    /// Bounds the iteration to `moves` steps.
    pub fn at_most(mut self, moves: usize) -> Self {
        self.max_moves = moves;
        self
    }

    /// Where the iteration stands: 0 when complete (or not begun), else the cursor to
    /// continue from.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Whether the iteration went through the whole keyspace.
    pub fn is_complete(&self) -> bool {
        self.moves > 0 && self.cursor == 0
    }

    /// The handle the iteration uses, for commands on the keys it finds.
    pub fn redis(&mut self) -> &mut Redis {
        &mut self.redis
    }

    /// One step of about `count` keys at the current cursor, without moving on: the cursor
    /// after it and its keys. `None` when the iteration is complete or out of steps.
    pub async fn look(&mut self, count: u64) -> Result<Option<(u64, Vec<Vec<u8>>)>, RedisError> {
        if self.is_complete() || self.moves >= self.max_moves {
            return Ok(None);
        }
        let step = self
            .redis
            .scan_step(self.cursor, &self.pattern, count)
            .await?;
        Ok(Some(step))
    }

    /// Moves on to `next` (a cursor [`Scan::look`] returned).
    pub fn move_to(&mut self, next: u64) {
        self.cursor = next;
        self.moves += 1;
    }

    /// The keys of the next step of about `count` keys; `None` when the iteration is
    /// complete or out of steps.
    pub async fn next_batch(&mut self, count: u64) -> Result<Option<Vec<Vec<u8>>>, RedisError> {
        let Some((next, keys)) = self.look(count).await? else {
            return Ok(None);
        };
        self.move_to(next);
        Ok(Some(keys))
    }
}

impl Redis {
    /// One `SCAN cursor MATCH pattern COUNT count` step: the next cursor (0 when the
    /// iteration is complete) and the keys of this step. The one place SCAN is spelled.
    ///
    /// On a cluster the iteration walks the primaries one after the other: the cursor's low
    /// [`NODE_BITS`] bits say which primary (in address order), the rest is that primary's
    /// cursor. SCAN's guarantee (every key present for the whole iteration is returned) holds
    /// while the set of primaries does not change.
    async fn scan_step(
        &mut self,
        cursor: u64,
        pattern: &str,
        count: u64,
    ) -> Result<(u64, Vec<Vec<u8>>), RedisError> {
        let mut scan = redis::cmd("SCAN");
        let Backend::Cluster(_) = self.backend else {
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(count);
            return scan.query_async(self).await;
        };
        let primaries = self.primaries().await?;
        let index = (cursor & ((1 << NODE_BITS) - 1)) as usize;
        let Some((host, port)) = primaries.get(index) else {
            // Fewer primaries than when the iteration started: nothing more to visit.
            return Ok((0, Vec::new()));
        };
        scan.arg(cursor >> NODE_BITS)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        let (next, keys): (u64, Vec<Vec<u8>>) = self.on_node(host, *port, scan).await?;
        let next = if next != 0 {
            match next
                .checked_shl(NODE_BITS)
                .filter(|c| c >> NODE_BITS == next)
            {
                Some(shifted) if shifted <= i64::MAX as u64 => shifted | index as u64,
                _ => {
                    return Err(RedisError::from((
                        ErrorKind::Client,
                        "SCAN cursor too large to combine with a node number",
                    )));
                }
            }
        } else if index + 1 < primaries.len() {
            (index + 1) as u64
        } else {
            0
        };
        Ok((next, keys))
    }
}
