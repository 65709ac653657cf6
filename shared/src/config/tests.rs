//! Unit tests of [`Config::from_lookup`]: defaults, ranges, modes, redaction.
#![allow(clippy::unwrap_used)]

use super::*;

fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(lookup_in(pairs))
}

/// The message of the error `pairs` give, which must name `variable`.
fn refused(pairs: &[(&str, &str)], variable: &str) -> String {
    let e = with(pairs).unwrap_err();
    assert_eq!(e.variable, variable, "{e}");
    e.to_string()
}

#[test]
fn defaults_mirror_the_original() {
    let c = with(&[]).unwrap();
    assert_eq!(c.redis_url, DEFAULT_REDIS_URL);
    assert!(!c.redis_url_is_explicit);
    assert_eq!(c.key_prefix, "demo_api:");
    assert_eq!(c.default_ttl, 3600);
    assert_eq!(c.max_body_bytes, 1 << 20);
}

#[test]
fn bad_number_names_variable_and_range() {
    let e = refused(&[("DEFAULT_TTL", "0")], "DEFAULT_TTL");
    assert!(e.contains("from 1 to 31536000"), "{e}");
    let e = refused(&[("MAX_BODY_BYTES", "lots")], "MAX_BODY_BYTES");
    assert!(e.starts_with("invalid MAX_BODY_BYTES"), "{e}");
}

#[test]
fn the_request_limit_must_exceed_one_redis_call() {
    let pairs = [
        ("REQUEST_TIMEOUT_MS", "200"),
        ("REDIS_RESPONSE_TIMEOUT_MS", "5000"),
    ];
    let e = refused(&pairs, "REQUEST_TIMEOUT_MS");
    assert!(e.contains("REDIS_RESPONSE_TIMEOUT_MS"), "{e}");
    assert!(with(&[("REQUEST_TIMEOUT_MS", "1001")]).is_ok());
}

#[test]
fn bad_url_is_rejected_and_redacted() {
    let e = refused(&[("REDIS_URL", "http://u:secret@host")], "REDIS_URL");
    assert!(!e.contains("secret"), "{e}");
}

#[test]
fn tls_and_acl_urls_are_accepted_and_redacted() {
    let c = with(&[("REDIS_URL", "rediss://app:s3cret@cache.example:6380/2")]).unwrap();
    assert!(c.redis_url_is_explicit);
    assert_eq!(
        c.redacted_redis_url(),
        "rediss://app:***@cache.example:6380/2"
    );
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn modes_read_their_variables() {
    assert_eq!(with(&[]).unwrap().topology, Topology::Standalone);
    let c = with(&[
        ("REDIS_URL", "rediss://app:pw@seed:7000"),
        ("REDIS_MODE", "cluster"),
        ("REDIS_CLUSTER_NODES", "a:7001, b:7002,redis://c:7003"),
    ])
    .unwrap();
    let Topology::Cluster { nodes } = &c.topology else {
        panic!("{:?}", c.topology)
    };
    assert_eq!(
        nodes,
        &[
            "rediss://app:pw@a:7001",
            "rediss://app:pw@b:7002",
            "redis://c:7003"
        ]
    );
    assert!(!format!("{c:?}").contains("pw"));
    let c = with(&[
        ("REDIS_URL", "redis://seed:7000"),
        ("REDIS_MODE", "Cluster"),
    ])
    .unwrap();
    assert_eq!(
        c.topology,
        Topology::Cluster {
            nodes: vec!["redis://seed:7000".into()]
        }
    );
    let c = with(&[
        ("REDIS_URL", "redis://:pw@ignored:6379/3"),
        ("REDIS_MODE", "sentinel"),
        ("REDIS_SENTINELS", "s1:26379,s2:26379"),
    ])
    .unwrap();
    assert_eq!(
        c.topology,
        Topology::Sentinel {
            sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
            master: "mymaster".into(),
            password: None,
        }
    );
}

#[test]
fn mode_mistakes_say_what_to_set() {
    let e = refused(&[("REDIS_MODE", "replicated")], "REDIS_MODE");
    assert!(e.contains("cluster"), "{e}");
    refused(&[("REDIS_MODE", "sentinel")], "REDIS_SENTINELS");
    let nodes = [("REDIS_MODE", "cluster"), ("REDIS_CLUSTER_NODES", "nohost")];
    refused(&nodes, "REDIS_CLUSTER_NODES");
    let db = [("REDIS_MODE", "cluster"), ("REDIS_URL", "redis://h:1/2")];
    assert!(refused(&db, "REDIS_URL").contains("database 0"));
    refused(&[("KEY_PREFIX", "app{}:")], "KEY_PREFIX");
}

#[test]
fn prefix_with_whitespace_is_rejected() {
    refused(&[("KEY_PREFIX", "a b")], "KEY_PREFIX");
}
