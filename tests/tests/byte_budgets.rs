//! No answer can exceed Lambda's response payload limit: batch pops and queue pages stop at
//! a byte budget inside their scripts (so a pop never removes a task its answer cannot
//! carry), on the runner and on Lambda events alike, with tasks as large as the API admits.

use api_tests::{
    TestApp,
    lambda::{Call, Source, event, invoke},
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::lambda::{RESPONSE_BODY_BUDGET, RESPONSE_PAYLOAD_LIMIT};

/// How many large tasks a test queues: together well over the payload limit.
const TASKS: usize = 250;

/// A task as large as the API admits: 10,000-character description, 1,000-character title,
/// of `fill` (a 3-byte '€' for size; '"' for the most escaping).
fn big_task(i: usize, fill: char) -> Value {
    json!({
        "id": format!("t{i:04}"),
        "title": fill.to_string().repeat(1000),
        "description": fill.to_string().repeat(10_000),
    })
}

/// Queues [`TASKS`] big tasks on `queue`, 25 per request (each under `MAX_BODY_BYTES`).
async fn fill(app: &TestApp, queue: &str, fill: char) {
    for start in (0..TASKS).step_by(25) {
        let batch: Vec<Value> = (start..start + 25).map(|i| big_task(i, fill)).collect();
        let r = app
            .post(&format!("/queue/{queue}/batch"), json!(batch))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
}

/// Queues [`TASKS`] tasks another client pushed straight into Redis: `{"id":..,"title":"..."}`
/// with a title of 12,000 `byte`s, stored as they are (bytes that are not UTF-8, or control
/// bytes that make the text no JSON): 3 MB stored, more once answered.
async fn fill_raw(app: &TestApp, queue: &str, byte: u8) {
    let mut conn = app.redis_conn().await;
    for i in 0..TASKS {
        let mut task = format!("{{\"id\":\"t{i:04}\",\"title\":\"").into_bytes();
        task.extend(std::iter::repeat_n(byte, 12_000));
        task.extend(b"\"}");
        let _: usize = conn
            .rpush(format!("demo_api:queue:{{{queue}}}"), task)
            .await
            .unwrap();
    }
}

fn ids(tasks: &Value) -> Vec<String> {
    api_tests::strings(tasks, "id")
}

/// `GET /queue/{name}/batch?count=1000` of 8 MB of tasks answers as many as fit, leaves the
/// others queued (Redis agrees), and draining the queue yields every task exactly once,
/// in order.
#[tokio::test]
async fn batch_pop_stops_at_the_byte_budget_and_loses_nothing() {
    let app = TestApp::new().await;
    fill(&app, "big", '€').await;
    let mut seen = Vec::new();
    let mut conn = app.redis_conn().await;
    loop {
        let r = app.get("/queue/big/batch?count=1000").await;
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
        let got = ids(&r.body["tasks"]);
        let bytes = serde_json::to_vec(&r.body).unwrap().len();
        assert!(bytes <= RESPONSE_BODY_BUDGET + 64 * 1024, "{bytes} bytes");
        assert!(!got.is_empty() && got.len() < TASKS, "{} tasks", got.len());
        let remaining = r.body["remaining_tasks"].as_u64().unwrap() as usize;
        let left: usize = conn.llen("demo_api:queue:{big}").await.unwrap();
        assert_eq!(left, remaining, "the answer's count is what Redis holds");
        seen.extend(got);
        assert_eq!(
            seen.len() + remaining,
            TASKS,
            "no task removed without being answered"
        );
    }
    let expected: Vec<String> = (0..TASKS).map(|i| format!("t{i:04}")).collect();
    assert_eq!(seen, expected);
}

/// `/all` pages by bytes too: following `next_offset` visits every task once, in order,
/// and nothing is removed.
#[tokio::test]
async fn queue_pages_stop_at_the_byte_budget() {
    let app = TestApp::new().await;
    fill(&app, "big", '€').await;
    let mut seen = Vec::new();
    let mut offset = 0;
    while offset < TASKS {
        let r = app
            .get(&format!("/queue/big/all?offset={offset}&limit=1000"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let got = ids(&r.body["tasks"]);
        assert!(!got.is_empty() && got.len() < TASKS, "{} tasks", got.len());
        assert_eq!(r.body["queue_length"], TASKS);
        let next = r.body["next_offset"].as_u64().unwrap() as usize;
        assert_eq!(next, offset + got.len());
        seen.extend(got);
        offset = next;
    }
    let expected: Vec<String> = (0..TASKS).map(|i| format!("t{i:04}")).collect();
    assert_eq!(seen, expected);
}

/// On Lambda the whole response payload (the body as an escaped JSON string inside the
/// envelope) stays under the limit, also for tasks made of quotes, which escaping doubles,
/// and for tasks another client stored that grow on the way out.
#[tokio::test]
async fn lambda_answers_stay_under_the_payload_limit() {
    let app = TestApp::new().await;
    let queue = shared::http::finish(queue::router(app.state.clone()), &app.state.config);
    fill(&app, "euro", '€').await;
    fill(&app, "quotes", '"').await;
    // Answered larger than stored: U+FFFD (3 bytes) per byte, a 6-byte escape per byte.
    fill_raw(&app, "not-utf8", 0xff).await;
    fill_raw(&app, "control", 0x01).await;
    for name in ["euro", "quotes", "not-utf8", "control"] {
        for path in [format!("/queue/{name}/all"), format!("/queue/{name}/batch")] {
            let query: &[(&str, &str)] = if path.ends_with("/all") {
                &[("limit", "1000")]
            } else {
                &[("count", "1000")]
            };
            let call = Call {
                method: "GET",
                path: &path,
                query,
                ..Call::default()
            };
            let r = invoke(&queue, event(Source::HttpV2, &call)).await;
            assert_eq!(r.status, 200, "{path}: {:?}", r.body);
            let payload = serde_json::to_vec(&r.raw).unwrap().len();
            assert!(
                payload <= RESPONSE_PAYLOAD_LIMIT,
                "{path}: a {payload}-byte response payload would fail the invocation"
            );
        }
    }
}
