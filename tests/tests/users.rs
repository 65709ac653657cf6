//! User profiles (README "User profiles (Redis hashes)"), against a real redis-server per test.

use api_tests::TestApp;
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};

fn john() -> Value {
    json!({"user_id": "user123", "name": "John Doe", "email": "john@example.com",
           "age": 30, "city": "San Francisco"})
}

#[tokio::test]
async fn create_stores_a_hash_with_ttl_in_one_go() {
    let app = TestApp::new().await;
    let r = app.post("/users", john()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["message"], "User profile cached successfully");
    assert_eq!(r.body["user_id"], "user123");
    assert_eq!(r.body["cache_key"], "demo_api:user:user123");
    assert_eq!(r.body["ttl_seconds"], 3600);

    let mut conn = app.redis_conn().await;
    let kind: String = redis::cmd("TYPE")
        .arg("demo_api:user:user123")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(kind, "hash");
    let name: String = conn.hget("demo_api:user:user123", "name").await.unwrap();
    assert_eq!(name, "John Doe");
    let created: String = conn
        .hget("demo_api:user:user123", "created_at")
        .await
        .unwrap();
    assert!(created.ends_with('Z') && created.len() == 24, "{created}");
    let pttl: i64 = conn.pttl("demo_api:user:user123").await.unwrap();
    assert!((3_599_000..=3_600_000).contains(&pttl), "{pttl}");
}

#[tokio::test]
async fn recreate_replaces_the_whole_profile() {
    let app = TestApp::new().await;
    app.post("/users", john()).await;
    let r = app
        .post(
            "/users",
            json!({"user_id": "user123", "name": "J", "email": "j@example.com", "ttl": 50}),
        )
        .await;
    assert_eq!(r.status, 201);
    let r = app.get("/users/user123").await;
    assert_eq!(r.body["profile"]["name"], "J");
    assert!(
        r.body["profile"].get("city").is_none(),
        "old field survived: {r:?}"
    );
    assert!(r.body["ttl_seconds"].as_u64().unwrap() <= 50);
}

#[tokio::test]
async fn get_is_a_hit_with_profile_and_ttl() {
    let app = TestApp::new().await;
    app.post("/users", john()).await;
    let r = app.get("/users/user123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user_id"], "user123");
    assert_eq!(r.body["cache_hit"], true);
    let ttl = r.body["ttl_seconds"].as_u64().unwrap();
    assert!((3599..=3600).contains(&ttl));
    let p = &r.body["profile"];
    assert_eq!(p["name"], "John Doe");
    assert_eq!(p["email"], "john@example.com");
    assert_eq!(p["age"], 30, "age is a number");
    assert_eq!(p["city"], "San Francisco");
    assert!(p["created_at"].is_string());
}

#[tokio::test]
async fn miss_is_404_with_cache_hit_false() {
    let app = TestApp::new().await;
    let r = app.get("/users/ghost").await;
    r.assert_problem(404, None);
    assert_eq!(r.body["cache_hit"], false);
    assert_eq!(r.body["user_id"], "ghost");
}

#[tokio::test]
async fn fields_returns_only_those_fields() {
    let app = TestApp::new().await;
    app.post(
        "/users",
        json!({"user_id": "a", "name": "Ann", "email": "ann@example.com"}),
    )
    .await;
    let r = app.get("/users/a?fields=name,email").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body["profile"],
        json!({"name": "Ann", "email": "ann@example.com"})
    );
    assert_eq!(r.body["cache_hit"], true);
    // A field the profile lacks is simply absent; the profile is still a hit.
    let r = app.get("/users/a?fields=city").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["profile"], json!({}));
    // Fields of a missing profile: a miss.
    let r = app.get("/users/nobody?fields=name").await;
    r.assert_problem(404, None);
    assert_eq!(r.body["cache_hit"], false);
    app.assert_422s(
        r#"
        GET /users/a?fields=password |  | fields
        GET /users/a?fields=, |  | fields
        "#,
    )
    .await;
}

#[tokio::test]
async fn hits_and_misses_are_counted_in_redis() {
    let app = TestApp::new().await;
    app.post("/users", john()).await;
    for _ in 0..3 {
        app.get("/users/user123").await;
    }
    app.get("/users/user123?fields=name").await;
    app.get("/users/nobody").await;
    app.get("/users/nobody2").await;
    let mut conn = app.redis_conn().await;
    let lookups: u64 = conn
        .hget("demo_api:stats:profiles", "lookups")
        .await
        .unwrap();
    let misses: u64 = conn
        .hget("demo_api:stats:profiles", "misses")
        .await
        .unwrap();
    assert_eq!((lookups, misses), (6, 2));
}

#[tokio::test]
async fn patch_updates_fields_and_keeps_the_ttl() {
    let app = TestApp::new().await;
    app.post("/users", john()).await;
    let mut conn = app.redis_conn().await;
    let () = conn
        .pexpire("demo_api:user:user123", 500_000)
        .await
        .unwrap();

    let r = app
        .call(
            Method::PATCH,
            "/users/user123",
            Some(json!({"city": "Oslo", "age": 31})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["profile"]["city"], "Oslo");
    assert_eq!(r.body["profile"]["age"], 31);
    assert_eq!(r.body["profile"]["name"], "John Doe");
    assert!(r.body["profile"]["updated_at"].is_string());
    assert!(r.body["ttl_seconds"].as_u64().unwrap() <= 500);
    let pttl: i64 = conn.pttl("demo_api:user:user123").await.unwrap();
    assert!((490_000..=500_000).contains(&pttl), "TTL not kept: {pttl}");

    // null removes an optional field.
    let r = app
        .call(Method::PATCH, "/users/user123", Some(json!({"city": null})))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["profile"].get("city").is_none(), "{r:?}");
}

#[tokio::test]
async fn patch_of_a_missing_profile_is_404_and_creates_nothing() {
    let app = TestApp::new().await;
    let r = app
        .call(Method::PATCH, "/users/ghost", Some(json!({"name": "Boo"})))
        .await;
    r.assert_problem(404, None);
    let mut conn = app.redis_conn().await;
    let exists: bool = conn.exists("demo_api:user:ghost").await.unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn delete_removes_then_404s() {
    let app = TestApp::new().await;
    app.post("/users", john()).await;
    let r = app.delete("/users/user123").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["user_id"], "user123");
    assert!(r.body["message"].is_string());
    app.get("/users/user123").await.assert_problem(404, None);
    app.delete("/users/user123").await.assert_problem(404, None);
}

#[tokio::test]
async fn bad_profiles_are_422_naming_the_field() {
    let app = TestApp::new().await;
    let base = || john().as_object().unwrap().clone();
    let with = |field: &str, value: Value| {
        let mut o = base();
        o.insert(field.into(), value);
        Value::Object(o)
    };
    let without = |field: &str| {
        let mut o = base();
        o.remove(field);
        Value::Object(o)
    };
    let cases = [
        (with("email", json!("not-an-email")), "email"),
        (with("email", json!("a@b")), "email"),
        (with("email", json!("a b@example.com")), "email"),
        (with("age", json!(151)), "age"),
        (with("age", json!(-1)), "age"),
        (with("age", json!("thirty")), "age"),
        (with("name", json!("   ")), "name"),
        (with("name", json!("n".repeat(201))), "name"),
        (with("user_id", json!("")), "user_id"),
        (with("user_id", json!("u".repeat(513))), "user_id"),
        (with("password", json!("hunter2")), "password"),
        (with("ttl", json!(0)), "ttl"),
        (without("email"), "email"),
        (without("name"), "name"),
        (without("user_id"), "user_id"),
    ];
    for (body, field) in cases {
        app.post("/users", body)
            .await
            .assert_problem(422, Some(field));
    }
    // Nothing was stored by any of them.
    let mut conn = app.redis_conn().await;
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(n, 0);

    app.post("/users", john()).await;
    let patch = |body: Value| app.call(Method::PATCH, "/users/user123", Some(body));
    patch(json!({})).await.assert_problem(422, Some("body"));
    patch(json!({"email": "nope"}))
        .await
        .assert_problem(422, Some("email"));
    patch(json!({"age": 200}))
        .await
        .assert_problem(422, Some("age"));
    patch(json!({"name": null}))
        .await
        .assert_problem(422, Some("name"));
    patch(json!({"user_id": "other"}))
        .await
        .assert_problem(422, Some("user_id"));
    patch(json!({"created_at": "x"}))
        .await
        .assert_problem(422, Some("created_at"));
    app.get("/users/")
        .await
        .assert_problem(400, Some("user_id"));
    app.get(&format!("/users/{}", "u".repeat(513)))
        .await
        .assert_problem(400, Some("user_id"));
}
