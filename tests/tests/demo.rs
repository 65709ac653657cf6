//! The demo tour (`local-runner demo`) against a fresh runner.

use api_tests::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_tour_runs_start_to_finish() {
    let app = TestApp::new().await;
    let server = app.serve().await;
    let mut out = Vec::new();
    local_runner::demo::run(
        &server.url(""),
        local_runner::demo::Api::Running,
        None,
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    // The dashboard's URL comes first, naming the tour's rate-limited caller.
    let first = out.lines().next().unwrap_or_default();
    let dashboard = format!("{}/dashboard?caller=demo-", server.url(""));
    assert!(
        first.contains("Watch it live:") && first.contains(&dashboard),
        "no dashboard URL first in:\n{out}"
    );
    for expected in [
        "1. Cache with expiry",
        "A second writer still holding the first tag: refused, nothing written.",
        "← 412",
        "← 304",
        "reads under 1 s before expiry were told to refresh",
        "2. User profiles in hashes",
        "3. Rate limiting in one Lua script",
        "Request 10: ✅ Allowed (10/10)",
        "Request 12: ⛔ Rate limited (10/10)",
        "\"remaining\":0",
        "\"violated-policies\":[\"per_minute\"]",
        "\"deleted_keys\":2",
        "4. Two contenders for one lock",
        "→ PUT /lock/demo-ledger/protected",
        "stale fencing token",
        "→ POST /semaphore/demo-pool/acquire?permits=2&ttl=10",
        "'demo-pool' has no permit left (all 2 held)",
        "5. A task queue on a list",
        "\"returned_to\":\"dead\"",
        "scheduled for queue 'demo-tasks' in 500 ms",
        "6. Monitoring",
        "→ GET /stats/patterns",
        "Tour complete.",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[tokio::test]
async fn demo_tour_reports_an_unreachable_api() {
    let mut out = Vec::new();
    let why = local_runner::demo::run(
        "http://127.0.0.1:1",
        local_runner::demo::Api::Running,
        None,
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(why.contains("cannot reach the API"), "{why}");
}
