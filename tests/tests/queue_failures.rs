//! When tasks fail (README "Task queue", delivery counts and dead letters): claims count
//! deliveries; a lapsed or nacked last delivery (`max_deliveries`) dead-letters the task;
//! `nack` gives a task back now or later; `delay_ms` schedules a push; dead letters are paged,
//! replayed (all or by id, deliveries reset) and deleted. Against a real Redis, with many
//! concurrent consumers where a guarantee is claimed.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use api_tests::{Reply, TestApp};
use serde_json::{Value, json};

fn task(id: &str) -> Value {
    json!({"id": id, "title": format!("task {id}")})
}

async fn claim(app: &TestApp, queue: &str, query: &str) -> Reply {
    app.post(&format!("/queue/{queue}/claim?{query}"), json!(null))
        .await
}

async fn nack(app: &TestApp, queue: &str, receipt: &Value, delay_ms: Option<u64>) -> Reply {
    let body = match delay_ms {
        Some(ms) => json!({"receipt": receipt, "delay_ms": ms}),
        None => json!({"receipt": receipt}),
    };
    app.post(&format!("/queue/{queue}/nack"), body).await
}

/// Polls `GET /queue/{queue}/all` until `done` holds for it (bounded: 10 s).
async fn until_page(app: &TestApp, queue: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let page = app.get(&format!("/queue/{queue}/all")).await.body;
        if done(&page) {
            return page;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn claims_count_deliveries_and_a_lapsed_last_one_dead_letters_the_task() {
    let app = TestApp::new().await;
    app.post("/queue/q", task("poison")).await;
    let first = claim(&app, "q", "visibility=1&max_deliveries=2").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["deliveries"], 1);
    // The first claim lapses: the task is back (a claim finds it again, second delivery).
    let started = Instant::now();
    let second = loop {
        let r = claim(&app, "q", "visibility=1&max_deliveries=2").await;
        if r.status == 200 {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(second.body["deliveries"], 2);
    assert_eq!(second.body["task"]["id"], "poison");
    // The second (last allowed) claim lapses too: dead, not back.
    let page = until_page(&app, "q", |p| p["dead_tasks"] == 1).await;
    assert_eq!(page["queue_length"], 0, "{page}");
    claim(&app, "q", "").await.assert_problem(404, None);
    let dead = app.get("/queue/q/dead").await;
    assert_eq!(dead.status, 200, "{dead:?}");
    assert_eq!(dead.body["dead_tasks"], 1);
    assert_eq!(dead.body["tasks"][0]["id"], "poison");
    assert_eq!(dead.body["next_offset"], 1);
}

#[tokio::test]
async fn nack_gives_the_task_back_now_later_or_to_the_dead_letters() {
    let app = TestApp::new().await;
    for id in ["a", "b"] {
        app.post("/queue/n", task(id)).await;
    }
    // Now: back at the head, ahead of `b`.
    let c = claim(&app, "n", "max_deliveries=3").await;
    let r = nack(&app, "n", &c.body["receipt"], None).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["returned_to"], "queued");
    assert_eq!(r.body["deliveries"], 1);
    assert!(r.body.get("visible_at_ms").is_none());
    // The receipt is spent.
    nack(&app, "n", &c.body["receipt"], None)
        .await
        .assert_problem(404, None);
    app.post("/queue/n/ack", json!({"receipt": c.body["receipt"]}))
        .await
        .assert_problem(404, None);
    // Later: scheduled, invisible until due.
    let c = claim(&app, "n", "max_deliveries=3").await;
    assert_eq!(c.body["task"]["id"], "a");
    assert_eq!(c.body["deliveries"], 2);
    let r = nack(&app, "n", &c.body["receipt"], Some(400)).await;
    assert_eq!(r.body["returned_to"], "scheduled", "{r:?}");
    assert!(r.body["visible_at_ms"].as_u64().unwrap() > 0);
    let page = app.get("/queue/n/all").await.body;
    assert_eq!(page["scheduled_tasks"], 1, "{page}");
    assert_eq!(page["queue_length"], 1, "only b is visible: {page}");
    // `b` is next; `a` only once due, at the tail.
    assert_eq!(claim(&app, "n", "").await.body["task"]["id"], "b");
    until_page(&app, "n", |p| {
        p["queue_length"] == 1 && p["scheduled_tasks"] == 0
    })
    .await;
    // Its third delivery, with max_deliveries=3: a nack now dead-letters it.
    let c = claim(&app, "n", "max_deliveries=3").await;
    assert_eq!(c.body["task"]["id"], "a");
    assert_eq!(c.body["deliveries"], 3);
    let r = nack(&app, "n", &c.body["receipt"], Some(1000)).await;
    assert_eq!(r.body["returned_to"], "dead", "{r:?}");
    assert_eq!(app.get("/queue/n/dead").await.body["dead_tasks"], 1);
}

#[tokio::test]
async fn a_delayed_push_is_invisible_until_due() {
    let app = TestApp::new().await;
    let r = app.post("/queue/later?delay_ms=300", task("soon")).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["task_id"], "soon");
    assert_eq!(r.body["scheduled_tasks"], 1);
    let due = r.body["visible_at_ms"].as_u64().unwrap();
    let page = app.get("/queue/later/all").await.body;
    assert_eq!(
        (
            page["queue_length"].clone(),
            page["scheduled_tasks"].clone()
        ),
        (json!(0), json!(1))
    );
    app.get("/queue/later").await.assert_problem(404, None);
    let page = until_page(&app, "later", |p| p["queue_length"] == 1).await;
    assert_eq!(page["scheduled_tasks"], 0);
    assert_eq!(page["tasks"][0]["id"], "soon");
    // Not before it was due (by the Redis clock the schedule uses).
    let mut conn = app.redis_conn().await;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    assert!(secs * 1000 + micros / 1000 >= due);
    // The default queue takes a delay too.
    assert_eq!(app.post("/queue?delay_ms=50", task("d")).await.status, 202);
    // A batch of one: its message in the singular.
    let r = app
        .post("/queue/single/batch?delay_ms=50", json!([task("s")]))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.body["message"], "1 task scheduled for queue 'single' in 50 ms",
        "{r:?}"
    );
    // And a batch: all at once, in their order (more than 10, so "10" must not sort before "2").
    let batch: Vec<Value> = (1..=12).map(|i| task(&format!("b{i}"))).collect();
    let r = app
        .post("/queue/batched/batch?delay_ms=200", json!(batch))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["task_ids"].as_array().unwrap().len(), 12);
    assert_eq!(r.body["scheduled_tasks"], 12);
    let page = until_page(&app, "batched", |p| p["queue_length"] == 12).await;
    let order: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=12).map(|i| format!("b{i}")).collect();
    assert_eq!(order, expected);
}

#[tokio::test]
async fn dead_letters_replay_with_deliveries_reset_and_can_be_deleted() {
    let app = TestApp::new().await;
    for id in ["x", "y", "z"] {
        app.post("/queue/d", task(id)).await;
        let c = claim(&app, "d", "max_deliveries=1").await;
        let r = nack(&app, "d", &c.body["receipt"], None).await;
        assert_eq!(r.body["returned_to"], "dead", "{r:?}");
    }
    // By id: only the listed (and unknown ids are no error).
    let r = app
        .post("/queue/d/dead/replay", json!({"ids": ["y", "nope"]}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["replayed"].clone(), r.body["dead_tasks"].clone()),
        (json!(1), json!(2))
    );
    let c = claim(&app, "d", "").await;
    assert_eq!(c.body["task"]["id"], "y");
    assert_eq!(
        c.body["deliveries"], 1,
        "replayed with its deliveries reset"
    );
    // All: no body at all.
    let r = app
        .call(http::Method::POST, "/queue/d/dead/replay", None)
        .await;
    assert_eq!(r.body["replayed"], 2, "{r:?}");
    assert_eq!(r.body["queue_length"], 2);
    // Dead again, then deleted.
    for _ in 0..2 {
        let c = claim(&app, "d", "max_deliveries=1").await;
        nack(&app, "d", &c.body["receipt"], None).await;
    }
    let r = app.delete("/queue/d/dead").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["deleted_count"], 2);
    assert_eq!(app.get("/queue/d/dead").await.body["dead_tasks"], 0);
    // DELETE /queue/{name} takes scheduled and dead tasks with it.
    app.post("/queue/d?delay_ms=60000", task("s")).await;
    app.post("/queue/d", task("w")).await;
    let c = claim(&app, "d", "max_deliveries=1").await;
    assert_eq!(c.body["task"]["id"], "w", "{c:?}");
    nack(&app, "d", &c.body["receipt"], None).await;
    let r = app.delete("/queue/d").await;
    assert_eq!(
        r.body["deleted_count"], 3,
        "y (claimed), s (scheduled) and w (dead): {r:?}"
    );
    assert!(app.keys("*queue:{d}*").await.is_empty());
}

/// 16 consumers drain 200 tasks; every 10th is poison (always nacked, max_deliveries 3),
/// the rest acked. Each good task is acked exactly once, each poison task ends in the dead
/// letters exactly once after exactly 3 deliveries, and nothing is left anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_ack_the_good_and_dead_letter_the_poison() {
    let app = Arc::new(TestApp::new().await);
    let tasks: Vec<Value> = (0..200).map(|i| task(&format!("t{i}"))).collect();
    let r = app.post("/queue/mix/batch", json!(tasks)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let mut consumers = api_tests::spawn_each(&app, 16, |app, _| async move {
        let (mut acked, mut deliveries) = (Vec::new(), BTreeMap::new());
        let started = Instant::now();
        loop {
            let c = claim(&app, "mix", "max_deliveries=3").await;
            if c.status == 404 {
                break (acked, deliveries);
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{c:?}");
            let id = c.body["task"]["id"].as_str().unwrap().to_owned();
            let n: u64 = id[1..].parse().unwrap();
            deliveries.insert(id.clone(), c.body["deliveries"].as_u64().unwrap());
            if n.is_multiple_of(10) {
                let r = nack(&app, "mix", &c.body["receipt"], None).await;
                assert_eq!(r.status, 200, "{r:?}");
            } else {
                let r = app
                    .post("/queue/mix/ack", json!({"receipt": c.body["receipt"]}))
                    .await;
                assert_eq!(r.status, 200, "{r:?}");
                acked.push(id);
            }
        }
    });
    let mut acked = Vec::new();
    let mut last_delivery: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(done) = consumers.join_next().await {
        let (a, d) = done.unwrap();
        acked.extend(a);
        for (id, n) in d {
            let e = last_delivery.entry(id).or_default();
            *e = (*e).max(n);
        }
    }
    acked.sort();
    let mut expected: Vec<String> = (0..200)
        .filter(|i: &u64| !i.is_multiple_of(10))
        .map(|i| format!("t{i}"))
        .collect();
    expected.sort();
    assert_eq!(acked, expected, "each good task acked exactly once");
    let dead = app.get("/queue/mix/dead?limit=1000").await.body;
    let mut dead_ids: Vec<String> = dead["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    dead_ids.sort();
    let mut poison: Vec<String> = (0..200).step_by(10).map(|i| format!("t{i}")).collect();
    poison.sort();
    assert_eq!(dead_ids, poison, "each poison task dead exactly once");
    for id in &poison {
        assert_eq!(last_delivery[id], 3, "{id}");
    }
    let page = app.get("/queue/mix/all").await.body;
    assert_eq!(
        (
            page["queue_length"].clone(),
            page["scheduled_tasks"].clone()
        ),
        (json!(0), json!(0))
    );
    let mut conn = app.redis_conn().await;
    let keys = app.state.keys.queue("mix");
    let open: u64 = redis::AsyncCommands::hlen(&mut conn, &keys[2])
        .await
        .unwrap();
    let counted: u64 = redis::AsyncCommands::hlen(&mut conn, &keys[4])
        .await
        .unwrap();
    assert_eq!(
        (open, counted),
        (0, 0),
        "no claim and no delivery count left behind"
    );
}

#[tokio::test]
async fn bad_failure_parameters_are_422s_naming_the_field() {
    let app = TestApp::new().await;
    app.assert_422s(
        r#"
        POST /queue/q?delay_ms=604800001 | {"id":"a","title":"t"} | delay_ms
        POST /queue/q/claim?max_deliveries=0 | null | max_deliveries
        POST /queue/q/claim?max_deliveries=101 | null | max_deliveries
        POST /queue/q/nack | {"receipt":"r","delay_ms":-1} | delay_ms
        POST /queue/q/nack | {"receipt":"r","delay_ms":604800001} | delay_ms
        POST /queue/q/nack | {} | receipt
        POST /queue/q/dead/replay | {"ids":[]} | ids
        POST /queue/q/dead/replay | {"ids":[""]} | ids[0]
        POST /queue/q/dead/replay | {"all":true} | all
        GET /queue/q/dead?limit=0 |  | limit
        "#,
    )
    .await;
    // A query number that is not one says so in the API's words, with what was sent.
    let r = app.post("/queue/q?delay_ms=-5", task("a")).await;
    r.assert_problem(422, Some("delay_ms"));
    assert_eq!(
        r.body["detail"],
        "delay_ms must be a whole number in digits only, got `-5`"
    );
    let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    app.post("/queue/q/dead/replay", json!({"ids": many}))
        .await
        .assert_problem(422, Some("ids"));
}

/// With no consumer left to claim, a claim that lapsed as its task's last delivery is a dead
/// letter as soon as someone looks at the dead letters (each dead-letter call runs the
/// queue's prologue), and an empty body with a JSON Content-Type replays all.
#[tokio::test]
async fn the_dead_letters_show_a_lapsed_last_delivery_without_another_claim() {
    let app = TestApp::new().await;
    app.post("/queue/l", task("lapsing")).await;
    let c = claim(&app, "l", "visibility=1&max_deliveries=1").await;
    assert_eq!(c.status, 200, "{c:?}");
    let started = Instant::now();
    loop {
        let dead = app.get("/queue/l/dead").await;
        assert_eq!(dead.status, 200, "{dead:?}");
        assert_eq!(dead.header("cache-control"), "no-store");
        if dead.body["dead_tasks"] == 1 {
            assert_eq!(dead.body["tasks"][0]["id"], "lapsing");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = http::Request::post("/queue/l/dead/replay")
        .header("content-type", "application/json")
        .body(axum::body::Body::empty())
        .unwrap();
    let r = app.request(request).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["replayed"], 1);
}

/// A claim replayed by its Idempotency-Key after it lapsed is a 409, not a task that is
/// someone else's by now.
#[tokio::test]
async fn a_replayed_claim_that_lapsed_is_a_409() {
    let app = TestApp::new().await;
    app.post("/queue/r", task("t")).await;
    let claim_with_key = || {
        http::Request::post("/queue/r/claim?visibility=1")
            .header("idempotency-key", "c1")
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let first = app.request(claim_with_key()).await;
    assert_eq!(first.status, 200, "{first:?}");
    let again = app.request(claim_with_key()).await;
    assert_eq!(again.status, 200, "a live claim replays: {again:?}");
    assert_eq!(again.header("idempotent-replayed"), "true");
    until_page(&app, "r", |p| p["queue_length"] == 1).await;
    app.request(claim_with_key())
        .await
        .assert_problem(409, None);
}
