//! The original README's promises, over real HTTP to a runner: its usage examples 1–3
//! (each assertion is what the example's comments say it prints) and its locking demo
//! ("try running two requests simultaneously").

use api_tests::TestApp;
use serde_json::json;

/// Example 1: user profile caching.
#[tokio::test]
async fn example_1_user_profile_caching() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let r = server
        .post(
            "/users",
            json!({"user_id": "alice", "name": "Alice Smith", "email": "alice@example.com"}),
        )
        .await;
    // {'message': 'User profile cached successfully', 'user_id': 'alice', ...}
    assert_eq!(r.status, 201);
    assert_eq!(r.body["message"], "User profile cached successfully");
    assert_eq!(r.body["user_id"], "alice");

    let r = server.get("/users/alice").await;
    // {'user_id': 'alice', 'profile': {...}, 'cache_hit': True, 'ttl_seconds': 3599}
    assert_eq!(r.status, 200);
    assert_eq!(r.body["user_id"], "alice");
    assert_eq!(r.body["profile"]["name"], "Alice Smith");
    assert_eq!(r.body["profile"]["email"], "alice@example.com");
    assert_eq!(r.body["cache_hit"], true);
    assert!((3599..=3600).contains(&r.body["ttl_seconds"].as_u64().unwrap()));
}

/// Example 2: 12 checks at 10 a minute print 10 "Allowed (n/10)", then 2 "Rate limited (10/10)".
#[tokio::test]
async fn example_2_rate_limiting() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let mut printed = Vec::new();
    for i in 0..12 {
        let r = server
            .get("/rate-limit/check?user_id=user123&limit=10&window=60")
            .await;
        let data = &r.body;
        if data["allowed"] == true {
            printed.push(format!(
                "Request {}: Allowed ({}/10)",
                i + 1,
                data["current_count"]
            ));
        } else {
            printed.push(format!(
                "Request {}: Rate limited ({}/10)",
                i + 1,
                data["current_count"]
            ));
        }
    }
    let mut expected: Vec<String> = (1..=10)
        .map(|i| format!("Request {i}: Allowed ({i}/10)"))
        .collect();
    expected.push("Request 11: Rate limited (10/10)".into());
    expected.push("Request 12: Rate limited (10/10)".into());
    assert_eq!(printed, expected);
}

/// Example 3: three tasks in, processed in FIFO order until a 404.
#[tokio::test]
async fn example_3_task_queue() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let tasks = [
        json!({"id": "1", "title": "Send email", "priority": "high"}),
        json!({"id": "2", "title": "Process payment", "priority": "high"}),
        json!({"id": "3", "title": "Generate report", "priority": "low"}),
    ];
    for task in tasks {
        assert_eq!(server.post("/queue/tasks", task).await.status, 201);
    }
    let mut printed = Vec::new();
    loop {
        let r = server.get("/queue/tasks").await;
        if r.status == 404 {
            break;
        }
        printed.push(format!(
            "Processing: {}",
            r.body["task"]["title"].as_str().unwrap()
        ));
    }
    assert_eq!(
        printed,
        [
            "Processing: Send email",
            "Processing: Process payment",
            "Processing: Generate report"
        ]
    );
}

/// `curl -X POST "http://localhost:8002/lock/payment_gateway?processing_time=2"` twice at
/// once: one processes, the other gets HTTP 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_simultaneous_lock_requests_one_gets_409() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let path = "/lock/payment_gateway?processing_time=2";
    let (a, b) = tokio::join!(
        server.post(path, json!(null)),
        server.post(path, json!(null))
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let loser = if a.status == 409 { &a } else { &b };
    loser.assert_problem(409, None);
    assert!(loser.body["retry_after_ms"].as_u64().unwrap() > 0);
}
