//! Task queues (README "Task queue (Redis lists)"), against a real redis-server per test.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use api_tests::TestApp;
use http::Method;
use redis::AsyncCommands;
use serde_json::{Value, json};

fn task(id: &str, title: &str) -> Value {
    json!({"id": id, "title": title})
}

#[tokio::test]
async fn push_then_pop_is_fifo() {
    let app = TestApp::new().await;
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let r = app
            .post("/queue/jobs", task(id, &format!("job {id}")))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.body["task_id"], *id);
        assert_eq!(r.body["queue_position"], i + 1);
        assert_eq!(r.body["queue_length"], i + 1);
        assert!(r.body["message"].is_string());
    }
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        let r = app.get("/queue/jobs").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["task"]["id"], *id);
        assert_eq!(r.body["task"]["priority"], "medium", "default priority");
        assert!(r.body["task"]["created_at"].is_string());
        assert_eq!(r.body["remaining_tasks"], 2 - i);
    }
    app.get("/queue/jobs").await.assert_problem(404, None);
}

#[tokio::test]
async fn queue_name_defaults_to_tasks() {
    let app = TestApp::new().await;
    assert_eq!(app.post("/queue", task("1", "one")).await.status, 201);
    let r = app.get("/queue/tasks/all").await;
    assert_eq!(r.body["queue_length"], 1);
    assert_eq!(app.get("/queue").await.body["task"]["id"], "1");
    app.post("/queue", task("2", "two")).await;
    assert_eq!(app.delete("/queue").await.body["deleted_count"], 1);
}

#[tokio::test]
async fn stored_task_keeps_every_field() {
    let app = TestApp::new().await;
    let t = json!({"id": "task1", "title": "Send email",
                   "description": "Send welcome email to new user", "priority": "high"});
    app.post("/queue/tasks", t).await;
    let r = app.get("/queue/tasks").await;
    let got = &r.body["task"];
    assert_eq!(got["id"], "task1");
    assert_eq!(got["title"], "Send email");
    assert_eq!(got["description"], "Send welcome email to new user");
    assert_eq!(got["priority"], "high");
}

#[tokio::test]
async fn batch_push_and_pop_in_one_call_each() {
    let app = TestApp::new().await;
    let tasks: Vec<Value> = (0..25).map(|i| task(&i.to_string(), "t")).collect();
    let r = app.post("/queue/b/batch", json!(tasks)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["queue_length"], 25);
    let ids: Vec<String> = (0..25).map(|i| i.to_string()).collect();
    assert_eq!(r.body["task_ids"], json!(ids));

    let r = app.get("/queue/b/batch?count=10").await;
    assert_eq!(r.status, 200);
    let got = api_tests::strings(&r.body["tasks"], "id");
    assert_eq!(got, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(r.body["remaining_tasks"], 15);
    let r = app.get("/queue/b/batch").await; // default count 10
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 10);
    let r = app.get("/queue/b/batch?count=1000").await;
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["remaining_tasks"], 0);
    app.get("/queue/b/batch").await.assert_problem(404, None);
}

#[tokio::test]
async fn batch_is_validated_whole_before_anything_is_pushed() {
    let app = TestApp::new().await;
    let batch = json!([task("1", "ok"), task("2", "ok"), {"id": "3", "title": "  "}]);
    app.post("/queue/v/batch", batch)
        .await
        .assert_problem(422, Some("[2].title"));
    let batch = json!([task("1", "ok"), {"id": "2", "title": "x", "priority": "urgent"}]);
    app.post("/queue/v/batch", batch)
        .await
        .assert_problem(422, Some("[1].priority"));
    app.post("/queue/v/batch", json!([]))
        .await
        .assert_problem(422, Some("body"));
    let too_many: Vec<Value> = (0..1001).map(|i| task(&i.to_string(), "t")).collect();
    app.post("/queue/v/batch", json!(too_many))
        .await
        .assert_problem(422, Some("body"));
    let mut conn = app.redis_conn().await;
    let n: u64 = conn.llen("demo_api:queue:{v}").await.unwrap();
    assert_eq!(n, 0, "a rejected batch pushed something");
}

#[tokio::test]
async fn all_pages_without_removing() {
    let app = TestApp::new().await;
    let tasks: Vec<Value> = (0..30).map(|i| task(&i.to_string(), "t")).collect();
    app.post("/queue/p/batch", json!(tasks)).await;
    let r = app.get("/queue/p/all?offset=10&limit=5").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["queue_length"], 30);
    assert_eq!(r.body["offset"], 10);
    assert_eq!(r.body["limit"], 5);
    let ids = api_tests::strings(&r.body["tasks"], "id");
    assert_eq!(ids, ["10", "11", "12", "13", "14"]);
    let r = app.get("/queue/p/all").await;
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 30);
    assert_eq!(r.body["limit"], 100);
    let r = app.get("/queue/p/all?offset=100").await;
    assert_eq!(r.body["tasks"], json!([]));
    assert_eq!(r.body["queue_length"], 30);
    let r = app.get("/queue/empty/all").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["queue_length"], 0);
}

#[tokio::test]
async fn delete_clears_waiting_and_claimed_tasks() {
    let app = TestApp::new().await;
    for i in 0..4 {
        app.post("/queue/d", task(&i.to_string(), "t")).await;
    }
    app.post("/queue/d/claim", json!(null)).await;
    let r = app.delete("/queue/d").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["deleted_count"], 4);
    assert!(r.body["message"].is_string());
    let keys = app.keys("*").await;
    assert!(keys.is_empty(), "{keys:?}");
    assert_eq!(app.delete("/queue/d").await.body["deleted_count"], 0);
}

#[tokio::test]
async fn claim_then_ack_removes_the_task_for_good() {
    let app = TestApp::new().await;
    app.post("/queue/c", task("x", "t")).await;
    let r = app.post("/queue/c/claim?visibility=30", json!(null)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["task"]["id"], "x");
    assert_eq!(r.body["remaining_tasks"], 0);
    let receipt = r.body["receipt"].as_str().unwrap().to_owned();
    // While claimed it is in the processing list, not the queue.
    let mut conn = app.redis_conn().await;
    let processing: u64 = conn.llen("demo_api:queue:{c}:processing").await.unwrap();
    assert_eq!(processing, 1);
    app.post("/queue/c/claim", json!(null))
        .await
        .assert_problem(404, None);

    let r = app.post("/queue/c/ack", json!({"receipt": receipt})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["task"]["id"], "x");
    let processing: u64 = conn.llen("demo_api:queue:{c}:processing").await.unwrap();
    assert_eq!(processing, 0);
    app.post("/queue/c/ack", json!({"receipt": receipt}))
        .await
        .assert_problem(404, None);
    app.post("/queue/c/ack", json!({"receipt": "made-up"}))
        .await
        .assert_problem(404, None);
}

/// Ends the lease of claim `receipt` on queue `name` now, as if its visibility timeout had
/// passed (rather than sleeping through it).
async fn lapse(app: &TestApp, name: &str, receipt: &str) {
    let mut conn = app.redis_conn().await;
    let () = conn
        .zadd(format!("demo_api:queue:{{{name}}}:leases"), receipt, 0)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_popped_task_takes_its_delivery_count_with_it() {
    // A claim counts a delivery; the lease lapses, the task goes back, and a plain pop takes
    // it for good: its count must go too, or the deliveries hash keeps it forever.
    let app = TestApp::new().await;
    app.post("/queue/d", task("once", "t")).await;
    let r = app.post("/queue/d/claim?visibility=30", json!(null)).await;
    let receipt = r.body["receipt"].as_str().unwrap().to_owned();
    lapse(&app, "d", &receipt).await;
    let r = app.get("/queue/d").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["task"]["id"], "once", "{r:?}");
    assert_eq!(
        app.keys("demo_api:queue:{d}:*").await,
        Vec::<String>::new(),
        "a popped task left state behind"
    );
}

#[tokio::test]
async fn unacked_claim_returns_to_the_head_after_its_visibility_timeout() {
    let app = TestApp::new().await;
    app.post("/queue/v", task("first", "t")).await;
    app.post("/queue/v", task("second", "t")).await;
    let r = app.post("/queue/v/claim?visibility=30", json!(null)).await;
    let stale = r.body["receipt"].as_str().unwrap().to_owned();
    // The consumer dies. Let its lease lapse now rather than sleeping 30 s.
    lapse(&app, "v", &stale).await;

    // Back at the head, ahead of "second".
    let r = app.get("/queue/v/all").await;
    let ids = api_tests::strings(&r.body["tasks"], "id");
    assert_eq!(ids, ["first", "second"]);
    let r = app.post("/queue/v/claim", json!(null)).await;
    assert_eq!(r.body["task"]["id"], "first");
    // The dead consumer's receipt no longer acks anything.
    app.post("/queue/v/ack", json!({"receipt": stale}))
        .await
        .assert_problem(404, None);
    let fresh = r.body["receipt"].as_str().unwrap();
    assert_eq!(
        app.post("/queue/v/ack", json!({"receipt": fresh}))
            .await
            .status,
        200
    );
}

/// 8 producers, 8 consumers, 1,000 tasks; one more consumer claims a few tasks with a
/// 1-second visibility and dies. Every task is acked exactly once, the dead consumer's
/// tasks included (this is the suite's one real-time visibility test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_producers_eight_consumers_every_task_exactly_once() {
    let app = Arc::new(TestApp::new().await);
    const TOTAL: usize = 1000;
    let producers = api_tests::spawn_each(&app, 8, |app, p| async move {
        for i in 0..(TOTAL / 8) {
            let id = format!("{p}-{i}");
            let r = if i % 25 == 0 {
                app.post("/queue/load/batch", json!([task(&id, "t")])).await
            } else {
                app.post("/queue/load", task(&id, "t")).await
            };
            assert_eq!(r.status, 201, "{r:?}");
        }
    });

    // The consumer that dies: claims 5 tasks, never acks.
    let mut abandoned = Vec::new();
    while abandoned.len() < 5 {
        let r = app
            .post("/queue/load/claim?visibility=1", json!(null))
            .await;
        if r.status == 200 {
            abandoned.push(r.body["task"]["id"].as_str().unwrap().to_owned());
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    let acked = Arc::new(AtomicUsize::new(0));
    let consumers = api_tests::spawn_each(
        &(app.clone(), acked.clone()),
        8,
        |(app, acked), _| async move {
            let mut mine = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while acked.load(Ordering::SeqCst) < TOTAL {
                assert!(tokio::time::Instant::now() < deadline, "consumers starved");
                let r = app
                    .post("/queue/load/claim?visibility=30", json!(null))
                    .await;
                if r.status == 404 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(r.status, 200, "{r:?}");
                let id = r.body["task"]["id"].as_str().unwrap().to_owned();
                let receipt = r.body["receipt"].as_str().unwrap();
                let ack = app
                    .post("/queue/load/ack", json!({"receipt": receipt}))
                    .await;
                assert_eq!(ack.status, 200, "{ack:?}");
                acked.fetch_add(1, Ordering::SeqCst);
                mine.push(id);
            }
            mine
        },
    );
    producers.join_all().await;
    let delivered: Vec<String> = consumers.join_all().await.into_iter().flatten().collect();

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &delivered {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), TOTAL, "some tasks were never delivered");
    for id in &abandoned {
        assert_eq!(
            counts.get(id.as_str()),
            Some(&1),
            "abandoned task {id} was lost"
        );
    }
    let r = app.get("/queue/load/all").await;
    assert_eq!(r.body["queue_length"], 0);
}

#[tokio::test]
async fn bad_tasks_and_parameters_are_422_naming_the_field() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"title": "t"}), "id"),
        (json!({"id": "1"}), "title"),
        (json!({"id": "", "title": "t"}), "id"),
        (json!({"id": 1, "title": "t"}), "id"),
        (json!({"id": "1", "title": " "}), "title"),
        (
            json!({"id": "1", "title": "t", "priority": "urgent"}),
            "priority",
        ),
        (json!({"id": "1", "title": "t", "colour": "red"}), "colour"),
        (
            json!({"id": "1", "title": "t", "description": "d".repeat(10_001)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        app.post("/queue/q", body)
            .await
            .assert_problem(422, Some(field));
    }
    app.assert_422s(
        r#"
        GET /queue/q/batch?count=0 |  | count
        GET /queue/q/batch?count=1001 |  | count
        GET /queue/q/all?limit=0 |  | limit
        GET /queue/q/all?limit=1001 |  | limit
        GET /queue/q/all?offset=-1 |  | offset
        POST /queue/q/claim?visibility=0 | null | visibility
        POST /queue/q/claim?visibility=43201 | null | visibility
        POST /queue/q/ack | {} | receipt
        "#,
    )
    .await;
    app.call(Method::PUT, "/queue/q", None)
        .await
        .assert_problem(405, None);
    let long = "q".repeat(513);
    app.get(&format!("/queue/{long}"))
        .await
        .assert_problem(400, Some("name"));
    let r = app.get("/queue/q/all").await;
    assert_eq!(r.body["queue_length"], 0, "a rejected task was pushed");
}

#[tokio::test]
async fn a_task_that_is_not_utf8_is_handed_out_not_lost() {
    // Another client pushed raw bytes: the pop must hand the task out (its invalid bytes as
    // U+FFFD), not remove it and fail with a 500.
    let app = TestApp::new().await;
    let mut conn = app.redis_conn().await;
    for name in ["bytes", "bytes2"] {
        let () = redis::cmd("RPUSH")
            .arg(format!("demo_api:queue:{{{name}}}"))
            .arg(&b"{\"id\":\"\xff\xfe\"}"[..])
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let r = app.get("/queue/bytes/all").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = app.get("/queue/bytes").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["task"]["id"], "\u{fffd}\u{fffd}", "{r:?}");
    let r = app.post("/queue/bytes2/claim", json!(null)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let receipt = r.body["receipt"].as_str().unwrap().to_owned();
    let r = app
        .post("/queue/bytes2/ack", json!({"receipt": receipt}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}
