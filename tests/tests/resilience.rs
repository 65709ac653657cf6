//! Connection failures that must not reach the client.

use api_tests::TestApp;
use serde_json::json;

/// As after a long idle (a frozen Lambda container, a NAT that forgot the socket): the
/// server has closed our connection. The next request must still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_idle_is_reopened_transparently() {
    let app = TestApp::new().await;
    for round in 0..5 {
        let r = app
            .post("/cache", json!({"key": "k", "value": round}))
            .await;
        assert_eq!(r.status, 201, "round {round}: {r:?}");
        let killed = app.kill_clients().await;
        assert!(killed >= 1, "the API's connection was not there to kill");
        // Give the server's FIN time to arrive, as it would during an idle period.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let r = app.get("/cache/k").await;
        assert_eq!(
            r.status, 200,
            "round {round}: first request after the close: {r:?}"
        );
        assert_eq!(r.body["value"], round);
    }
}
