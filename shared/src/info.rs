//! A tolerant reader of Redis `INFO` output: `key:value` lines under `# Section` headers.
//! Fields come and go across Redis versions and Redis-compatible servers (ElastiCache,
//! Valkey, KeyDB...), so every lookup is optional and nothing here fails.
//!
//! The one place `INFO` text is read: `/stats` and the start-up checks of
//! [`crate::state`] (the server's mode, its eviction policy) both go through [`Info`].

use std::collections::HashMap;

use crate::config::Mode;

/// The fields of one `INFO` answer.
pub struct Info<'a>(HashMap<&'a str, &'a str>);

impl<'a> Info<'a> {
    /// Reads `INFO` text; lines that are not `key:value` are skipped.
    pub fn parse(text: &'a str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect(),
        )
    }

    /// A field as text.
    pub fn text(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).copied()
    }

    /// A field as a whole number (`0` when absent or not a number).
    pub fn number(&self, key: &str) -> u64 {
        self.text(key)
            .and_then(|v| {
                v.parse::<u64>()
                    .ok()
                    .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
            })
            .unwrap_or(0)
    }
}

impl<'a> Info<'a> {
    /// `redis_mode`: cluster, sentinel, or else standalone (also when absent, as on
    /// servers older than the field).
    pub fn mode(&self) -> Mode {
        match self.text("redis_mode") {
            Some("cluster") => Mode::Cluster,
            Some("sentinel") => Mode::Sentinel,
            _ => Mode::Standalone,
        }
    }
}

/// The warning for a `maxmemory-policy` that may evict keys (any but `noeviction`): locks
/// and queued tasks would then vanish under memory pressure. `None` for `noeviction`. The
/// one text of this warning: logged at start and listed in `/stats` `warnings`.
pub fn eviction_warning(policy: &str) -> Option<String> {
    (policy != "noeviction").then(|| {
        format!(
            "Redis maxmemory-policy is {policy}: under memory pressure it may evict locks and \
             queued tasks. Set maxmemory-policy noeviction (see README, Failure behaviour)."
        )
    })
}

/// Bytes as Redis shows them (`1.05M`), for servers whose INFO lacks `used_memory_human`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.2}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_tolerates_the_rest() {
        let info = Info::parse(
            "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n# Memory\r\n\
             used_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory_policy:noeviction\r\n\
             garbage line\r\nmem_fragmentation_ratio:1.5\r\n",
        );
        assert_eq!(info.text("redis_version"), Some("7.0.15"));
        assert_eq!(info.number("uptime_in_seconds"), 42);
        assert_eq!(info.number("used_memory"), 1_048_576);
        assert_eq!(info.number("mem_fragmentation_ratio"), 1);
        assert_eq!(info.number("missing"), 0);
        assert_eq!(info.text("maxmemory_policy"), Some("noeviction"));
        assert_eq!(info.mode(), Mode::Standalone);
        assert_eq!(Info::parse("redis_mode:cluster\r\n").mode(), Mode::Cluster);
    }

    #[test]
    fn only_noeviction_is_safe() {
        assert_eq!(eviction_warning("noeviction"), None);
        let warning = eviction_warning("allkeys-lru").unwrap_or_default();
        assert!(warning.contains("allkeys-lru") && warning.contains("noeviction"));
    }

    #[test]
    fn human_bytes_like_redis() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1_048_576), "1.00M");
        assert_eq!(human_bytes(1536), "1.50K");
    }
}
