//! Secrets out of the environment: a function given `SECRETS_ARN` reads `REDIS_URL` and
//! `API_KEY` once at init through the AWS Parameters and Secrets Lambda Extension's local
//! HTTP endpoint. The extension is played here by a small HTTP server that answers the way
//! AWS documents it (token header required, `SecretString` in a JSON envelope).

use axum::{
    Json, Router,
    extract::Query,
    http::{HeaderMap, StatusCode},
    routing::get,
};
use serde_json::json;
use std::collections::HashMap;

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-AbCdEf";
const TOKEN: &str = "session-token";

async fn extension(secret: serde_json::Value) -> u16 {
    let app = Router::new().route(
        "/secretsmanager/get",
        get(
            move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                let token = headers
                    .get("x-aws-parameters-secrets-token")
                    .and_then(|v| v.to_str().ok());
                if token != Some(TOKEN) {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no token"})));
                }
                if q.get("secretId").map(String::as_str) != Some(ARN) {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": "unknown secret"})),
                    );
                }
                (
                    StatusCode::OK,
                    Json(json!({"ARN": ARN, "Name": "api", "SecretString": secret.to_string()})),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

#[tokio::test]
async fn settings_come_from_the_secret_through_the_extension() {
    let port = extension(json!({
        "REDIS_URL": "rediss://app:s3cret@cache.example:6379/0",
        "API_KEY": "0123456789abcdef0123",
    }))
    .await;
    let settings = shared::secrets::fetch(port, ARN, TOKEN).await.unwrap();
    assert_eq!(
        settings["REDIS_URL"],
        "rediss://app:s3cret@cache.example:6379/0"
    );
    let config = shared::Config::from_lookup(|n| settings.get(n).cloned()).unwrap();
    assert_eq!(config.api_key.as_deref(), Some("0123456789abcdef0123"));
    assert!(config.redacted_redis_url().contains("***"));
}

#[tokio::test]
async fn refusals_are_named_without_the_secret() {
    let port = extension(json!({"REDIS_URL": "redis://:hunter2hunter2@h/0"})).await;
    let e = shared::secrets::fetch(port, ARN, "wrong")
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("status 401") && text.contains(ARN), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let port = extension(json!(["not", "an", "object"])).await;
    let e = shared::secrets::fetch(port, ARN, TOKEN).await.unwrap_err();
    assert!(e.to_string().contains("JSON object"), "{e}");

    // Nothing listening: a clear error, not a hang.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let e = shared::secrets::fetch(dead, ARN, TOKEN).await.unwrap_err();
    assert!(e.to_string().contains(&format!("port {dead}")), "{e}");
}
