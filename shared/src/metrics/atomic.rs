//! What the figures are kept in: a histogram made of atomics, and a fixed table of entries
//! named by a short string (a route template, a Redis command) that fills up as names are
//! first seen. Recording is two relaxed atomic adds: no lock and no allocation (only a
//! name's first appearance allocates its entry), so a request pays next to nothing for it.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus_client::encoding::{MetricEncoder, NoLabelSet};

/// The bucket bounds, in seconds: OpenTelemetry's advice for `http.server.request.duration`
/// (`ExplicitBucketBoundaries`, <https://opentelemetry.io/docs/specs/semconv/http/http-metrics/>),
/// used for the Redis command durations too so that the two read alike.
pub const BOUNDS: [f64; 15] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// [`BOUNDS`] in nanoseconds, compared against without a float conversion.
const BOUNDS_NANOS: [u64; 15] = {
    let mut nanos = [0u64; 15];
    let mut i = 0;
    while i < BOUNDS.len() {
        nanos[i] = (BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// A histogram of durations over [`BOUNDS`]: a count per bucket (the last one is `+Inf`)
/// and the sum in nanoseconds (an integer, so adding is one atomic instruction).
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BOUNDS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many durations it counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes it as one histogram of the family `encoder` stands for.
    pub(super) fn encode(&self, mut encoder: MetricEncoder<'_>) -> std::fmt::Result {
        // The encoder accumulates: it takes each bucket's own count.
        let buckets: [(f64, u64); BOUNDS.len() + 1] = std::array::from_fn(|i| {
            let bound = BOUNDS.get(i).copied().unwrap_or(f64::INFINITY);
            (bound, self.counts[i].load(Ordering::Relaxed))
        });
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// At most `capacity` entries named by strings, each made on first sight and kept for the
/// process's life. Open addressing over [`OnceLock`]s: a lookup hashes the name and reads
/// slots until it finds it (an atomic load each); a new name takes the first empty slot.
#[derive(Debug)]
pub struct Table<T> {
    slots: Box<[Slot<T>]>,
}

/// A [`Table`] slot: empty, or a name and its entry.
type Slot<T> = OnceLock<(Box<str>, T)>;

impl<T: Default> Table<T> {
    /// An empty table of `capacity` slots.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity.max(1)).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The entry named `name` (and the name as the table keeps it), made when it is new;
    /// `None` once the table is full, so that no input can grow it without bound.
    pub fn get(&self, name: &str) -> Option<(&str, &T)> {
        let len = self.slots.len();
        let start = (fnv1a(name.as_bytes()) % len as u64) as usize;
        for i in 0..len {
            let slot = &self.slots[(start + i) % len];
            let (kept, entry) = match slot.get() {
                Some(found) => found,
                // Another thread may fill it first, with another name: then read on.
                None => slot.get_or_init(|| (name.into(), T::default())),
            };
            if **kept == *name {
                return Some((kept, entry));
            }
        }
        None
    }

    /// Every entry made so far, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.get().map(|(name, entry)| (&**name, entry)))
    }
}

/// FNV-1a: a few instructions per byte for the short names kept here.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations_land_in_their_bucket() {
        let h = Histogram::default();
        h.observe(Duration::ZERO);
        h.observe(Duration::from_millis(5));
        h.observe(Duration::from_micros(5001));
        h.observe(Duration::from_secs(11));
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 1, "0 is in le=0");
        assert_eq!(counts[1], 1, "5 ms is in le=0.005");
        assert_eq!(counts[2], 1, "5.001 ms is in le=0.01");
        assert_eq!(counts[BOUNDS.len()], 1, "11 s is in +Inf");
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn a_table_keeps_each_name_once_and_stops_when_full() {
        let table: Table<AtomicU64> = Table::new(3);
        for name in ["a", "b", "a", "c", "b"] {
            table.get(name).unwrap().1.fetch_add(1, Ordering::Relaxed);
        }
        assert!(table.get("d").is_none(), "full");
        let mut seen: Vec<(String, u64)> = table
            .iter()
            .map(|(n, c)| (n.to_owned(), c.load(Ordering::Relaxed)))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [("a".into(), 2), ("b".into(), 2), ("c".into(), 1)].to_vec()
        );
    }
}
