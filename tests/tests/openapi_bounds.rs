//! Every bound the generated OpenAPI document states (`minLength`, `maxLength`, `pattern`,
//! `minimum`, `maximum`, `default`, `minItems`, `maxItems`) is the constant the handlers
//! check: the document is walked, each parameter and property with a bound is looked up in
//! the table of rules below, and its bounds must equal the rule's, keyword for keyword. A
//! bound on a field the table does not know fails too, so a new rule cannot be stated in the
//! document without being compared here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Map, Value, json};
use shared::{
    idempotency::MAX_KEY_CHARS,
    keys::{MAX_IDENTIFIER_CHARS, PATH_IDENTIFIER},
    models::{
        self, lock, queue, rate_limit, semaphore,
        users::{self, fields_pattern},
    },
    validate::{Bounds, Defaulted, EMAIL, MAX_EMAIL_CHARS, NON_BLANK},
};

/// The keywords compared.
const KEYWORDS: [&str; 8] = [
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "default",
    "minItems",
    "maxItems",
];

/// An identifier read back through a URL path.
fn path_identifier() -> Value {
    json!({"minLength": 1, "maxLength": MAX_IDENTIFIER_CHARS, "pattern": PATH_IDENTIFIER})
}

/// Any other identifier.
fn identifier() -> Value {
    json!({"minLength": 1, "maxLength": MAX_IDENTIFIER_CHARS})
}

fn range<T: Into<Value>>(b: Bounds<T>) -> Value {
    json!({"minimum": b.min.into(), "maximum": b.max.into()})
}

/// A parameter's rule: its bounds and its default.
fn param<T: Into<Value>>(rule: Defaulted<T>) -> Value {
    let mut expected = range(rule.bounds);
    expected["default"] = rule.default.into();
    expected
}

fn with_default(mut rule: Value, default: impl Into<Value>) -> Value {
    rule["default"] = default.into();
    rule
}

fn text(max_chars: usize) -> Value {
    json!({"minLength": 1, "maxLength": max_chars, "pattern": NON_BLANK})
}

fn email() -> Value {
    json!({"maxLength": MAX_EMAIL_CHARS, "pattern": EMAIL})
}

/// The rule of a parameter (`where` is the route) or a property (`where` is the schema's
/// name), from the constants; `None` for a field no rule covers.
fn rule(place: &str, name: &str) -> Option<Value> {
    Some(match (place, name) {
        // Path parameters, on every route that has one.
        (_, "key" | "user_id" | "resource" | "name") if place.contains(&format!("{{{name}}}")) => {
            path_identifier()
        }
        // Visible ASCII, as the header's check (`is_ascii_graphic`) reads it.
        (_, "Idempotency-Key") => {
            assert!((0..=255_u8).all(|b| (b'!'..=b'~').contains(&b) == b.is_ascii_graphic()));
            json!({"minLength": 1, "maxLength": MAX_KEY_CHARS, "pattern": "^[!-~]+$"})
        }
        ("/cache", "pattern") => with_default(identifier(), "*"),
        ("/cache", "count") => param(models::PAGE),
        ("/cache", "cursor") => param(models::CURSOR),
        ("PutEntry", "key") | ("CreateProfile", "user_id") => path_identifier(),
        ("PutEntry" | "CreateProfile", "ttl") => range(models::TTL_SECS),
        ("PutEntry", "compute_ms") => range(models::COMPUTE_MS),
        ("/cache/{key}", "beta") => param(models::XFETCH_BETA),
        ("/cache" | "/cache/{key}", "If-Match" | "If-None-Match") => {
            json!({"pattern": models::ENTITY_TAGS})
        }
        ("CreateProfile" | "UpdateProfile", "name" | "city") => text(users::MAX_TEXT_CHARS),
        ("CreateProfile" | "UpdateProfile", "email") => email(),
        ("CreateProfile" | "UpdateProfile", "age") => range(users::AGE),
        ("/users/{user_id}", "fields") => json!({"pattern": fields_pattern()}),
        ("/rate-limit/check" | "/rate-limit/status", "user_id") => identifier(),
        ("/rate-limit/check" | "/rate-limit/status" | "Policy", "limit") => {
            param(rate_limit::LIMIT)
        }
        ("/rate-limit/check" | "/rate-limit/status" | "Policy", "window") => {
            param(rate_limit::WINDOW_SECS)
        }
        ("/rate-limit/check" | "/rate-limit/status" | "MultiCheck", "cost") => {
            param(rate_limit::COST)
        }
        ("Policy", "name") => {
            json!({"minLength": 1, "maxLength": rate_limit::MAX_POLICY_NAME_CHARS,
            "pattern": rate_limit::POLICY_NAME})
        }
        ("MultiCheck", "policies") => json!({"minItems": rate_limit::POLICIES.min,
            "maxItems": rate_limit::POLICIES.max}),
        ("MultiCheck", "user_id") => identifier(),
        ("/lock/{resource}", "processing_time") => param(lock::PROCESSING_SECS),
        ("/lock/{resource}" | "/lock/{resource}/acquire", "ttl") => param(lock::LOCK_TTL_SECS),
        ("/lock/{resource}" | "/lock/{resource}/acquire", "wait_ms") => param(lock::WAIT_MS),
        ("ExtendLock", "ttl") => range(lock::LOCK_TTL_SECS.bounds),
        ("/semaphore/{name}/acquire", "permits") => range(semaphore::SEMAPHORE_PERMITS),
        ("/semaphore/{name}/acquire", "ttl") => param(semaphore::SEMAPHORE_TTL_SECS),
        ("ExtendPermit", "ttl") => range(semaphore::SEMAPHORE_TTL_SECS.bounds),
        ("ExtendPermit" | "ReleasePermit", "token") => identifier(),
        ("ExtendLock" | "ReleaseLock", "token")
        | ("AckClaim" | "NackClaim", "receipt")
        | ("NewTask", "id") => identifier(),
        ("NewTask", "title") => text(queue::MAX_TITLE_CHARS),
        ("NewTask", "description") => json!({"maxLength": queue::MAX_DESCRIPTION_CHARS}),
        ("TaskBatch", "") => json!({"minItems": queue::BATCH.min, "maxItems": queue::BATCH.max}),
        ("/queue/{name}/batch", "count") => param(queue::BATCH_POP),
        ("/queue/{name}/all" | "/queue/{name}/dead", "limit") => param(queue::PAGE_LIMIT),
        ("/queue/{name}/all" | "/queue/{name}/dead", "offset") => param(queue::OFFSET),
        ("/queue/{name}/claim", "visibility") => param(queue::VISIBILITY_SECS),
        ("/queue/{name}/claim", "max_deliveries") => param(queue::MAX_DELIVERIES),
        ("/queue" | "/queue/{name}" | "/queue/{name}/batch", "delay_ms") => param(queue::DELAY_MS),
        ("NackClaim", "delay_ms") => range(queue::DELAY_MS.bounds),
        ("ReplayDead", "ids") => {
            json!({"minItems": queue::REPLAY_IDS.min, "maxItems": queue::REPLAY_IDS.max})
        }
        ("/stats", "exact") => json!({"default": false}),
        ("/stats/patterns", "count") => param(shared::models::stats::PATTERNS_COUNT),
        ("/stats/patterns", "cursor") => param(models::CURSOR),
        _ => return None,
    })
}

/// The compared keywords of `schema`.
fn bounds_of(schema: &Value) -> Map<String, Value> {
    KEYWORDS
        .iter()
        .filter_map(|k| schema.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}

/// Numbers compare by value (`25` and `25.0` are one bound).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Checks one schema against its rule; returns what differs.
fn check(place: &str, name: &str, schema: &Value, problems: &mut Vec<String>) -> bool {
    let found = bounds_of(schema);
    let Some(expected) = rule(place, name) else {
        // Unsigned response fields get `minimum: 0` from their Rust type; anything else
        // needs a rule.
        let derived = found.len() == 1 && found.get("minimum") == Some(&json!(0));
        if !found.is_empty() && !derived {
            problems.push(format!(
                "{place} {name}: bounds {found:?} but no rule in this test"
            ));
        }
        return false;
    };
    let expected = expected.as_object().unwrap();
    for keyword in KEYWORDS {
        match (found.get(keyword), expected.get(keyword)) {
            (Some(a), Some(b)) if same(a, b) => {}
            (None, None) => {}
            (a, b) => problems.push(format!(
                "{place} {name}: {keyword} is {a:?} in the document, {b:?} in the rule"
            )),
        }
    }
    true
}

#[test]
fn every_bound_in_the_document_is_the_rules_constant() {
    let doc = serde_json::to_value(docs::openapi()).unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (route, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                checked += usize::from(check(route, name, &p["schema"], &mut problems));
                // Parameters hold no bound outside their schema.
                let outside = bounds_of(p);
                assert!(outside.is_empty(), "{method} {route} {name}: {outside:?}");
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        checked += usize::from(check(name, "", schema, &mut problems));
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            checked += usize::from(check(name, field, property, &mut problems));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // As many bounded fields as the table describes: a field that lost its bounds (or was
    // renamed out of the table's reach) would otherwise escape.
    assert_eq!(checked, 127, "bounded fields checked");
}
