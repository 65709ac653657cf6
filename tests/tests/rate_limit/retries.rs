//! `Idempotency-Key` on the rate-limit writes: a keyed check that was admitted replays its
//! decision instead of counting again, a refused one is not recorded (a retry asks again),
//! and a keyed reset replays how many keys it deleted.

use api_tests::TestApp;
use http::Method;
use serde_json::{Value, json};

/// How many units the status of `user`'s fixed window (limit 2, 60 s) says are counted.
async fn counted(app: &TestApp, user: &str) -> Value {
    let r = app
        .get(&format!(
            "/rate-limit/status?user_id={user}&limit=2&window=60"
        ))
        .await;
    r.body["current_count"].clone()
}

#[tokio::test]
async fn a_keyed_check_counts_once_and_replays_its_decision() {
    let app = TestApp::new().await;
    let check = |body: &Value, key: &'static str| {
        app.keyed(Method::POST, "/rate-limit/check", Some(body.clone()), key)
    };
    let body = json!({"user_id": "k", "policies": [{"limit": 2, "window": 60}]});
    let again = app
        .twice(Method::POST, "/rate-limit/check", Some(body.clone()), "c1")
        .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(counted(&app, "k").await, 1, "the retry counted again");
    // The same key for another request is a 422 naming the header.
    let other = json!({"user_id": "k", "policies": [{"limit": 3, "window": 60}]});
    check(&other, "c1")
        .await
        .assert_problem(422, Some("Idempotency-Key"));
    // A refusal changed nothing and is not recorded: its retry is decided afresh.
    for key in ["c2", "c3"] {
        let r = check(&body, key).await;
        assert_eq!(r.status, if key == "c2" { 200 } else { 429 }, "{r:?}");
    }
    let r = check(&body, "c3").await;
    assert_eq!(
        (r.status.as_u16(), r.header("idempotent-replayed")),
        (429, "")
    );
    assert_eq!(counted(&app, "k").await, 2);
}

#[tokio::test]
async fn a_keyed_reset_replays_how_many_keys_it_deleted() {
    let app = TestApp::new().await;
    for window in [60, 61, 62] {
        let path = format!("/rate-limit/check?user_id=r&limit=2&window={window}");
        assert_eq!(app.get(&path).await.status, 200);
    }
    let again = app.twice(Method::DELETE, "/rate-limit/r", None, "d1").await;
    assert_eq!(again.body["deleted_keys"], 3, "{again:?}");
    // Unkeyed, a second reset finds nothing left.
    let plain = app.delete("/rate-limit/r").await;
    assert_eq!(plain.body["deleted_keys"], 0, "{plain:?}");
}
