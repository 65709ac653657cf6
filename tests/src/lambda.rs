//! Driving a function's router the way the Lambda runtime does: an event's JSON is parsed
//! by `lambda_http` into a request, the router answers, and `lambda_http` turns the answer
//! into the response JSON API Gateway expects.

use axum::Router;
use lambda_http::{Adapter, Service, lambda_runtime::LambdaEvent, request::LambdaRequest};
use serde_json::{Value, json};

/// Which front door the event comes through.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// REST API (payload v1) on a named stage (`prod`).
    RestV1,
    /// HTTP API (payload v2) on the `$default` stage.
    HttpV2,
    /// A Lambda Function URL (payload v2, its own domain).
    FunctionUrl,
}

/// All of them.
pub const SOURCES: [Source; 3] = [Source::RestV1, Source::HttpV2, Source::FunctionUrl];

/// What a test asks for.
#[derive(Debug, Clone, Default)]
pub struct Call<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, percent-encoded as a client sends it (`/cache/a%20b`).
    pub path: &'a str,
    /// Query parameters, decoded.
    pub query: &'a [(&'a str, &'a str)],
    /// The body, if any.
    pub body: Option<&'a str>,
    /// Send the body base64-encoded, as API Gateway does for binary media types.
    pub base64: bool,
}

/// The event JSON `source` would deliver for `call`.
pub fn event(source: Source, call: &Call<'_>) -> Value {
    let body = call.body.map(|b| {
        if call.base64 {
            base64(b.as_bytes())
        } else {
            b.to_owned()
        }
    });
    let mut headers = json!({"host": "api.example.com", "user-agent": "test"});
    if call.body.is_some() {
        headers["content-type"] = json!("application/json");
    }
    let raw_query: Vec<String> = call
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let query_map: serde_json::Map<String, Value> = call
        .query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    match source {
        Source::RestV1 => json!({
            "resource": "/{proxy+}",
            // REST APIs hand the path over decoded.
            "path": decode(call.path),
            "httpMethod": call.method,
            "headers": headers,
            "multiValueHeaders": {},
            "queryStringParameters": if call.query.is_empty() { Value::Null } else { Value::Object(query_map.clone()) },
            "multiValueQueryStringParameters": if call.query.is_empty() { Value::Null } else {
                Value::Object(query_map.iter().map(|(k, v)| (k.clone(), json!([v]))).collect())
            },
            "pathParameters": null,
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "resourceId": "abc123",
                "stage": "prod",
                "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "test"},
                "resourcePath": "/{proxy+}",
                "httpMethod": call.method,
                "apiId": "1234567890",
                "path": format!("/prod{}", decode(call.path)),
                "protocol": "HTTP/1.1",
                "domainName": "api.example.com"
            },
            "body": body,
            "isBase64Encoded": call.base64
        }),
        Source::HttpV2 | Source::FunctionUrl => {
            let domain = match source {
                Source::FunctionUrl => "abcdefghij.lambda-url.eu-west-1.on.aws",
                _ => "api.example.com",
            };
            headers["host"] = json!(domain);
            json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": call.path,
                "rawQueryString": raw_query.join("&"),
                "headers": headers,
                "queryStringParameters": if call.query.is_empty() { Value::Null } else { Value::Object(query_map) },
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "abcdefghij",
                    "domainName": domain,
                    "domainPrefix": "abcdefghij",
                    "http": {
                        "method": call.method,
                        "path": call.path,
                        "protocol": "HTTP/1.1",
                        "sourceIp": "127.0.0.1",
                        "userAgent": "test"
                    },
                    "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
                    "routeKey": "$default",
                    "stage": "$default",
                    "time": "25/Nov/2026:19:03:58 +0000",
                    "timeEpoch": 1795633438000u64
                },
                "body": body,
                "isBase64Encoded": call.base64
            })
        }
    }
}

/// An answer, as API Gateway reads it from the function.
#[derive(Debug)]
pub struct LambdaReply {
    /// `statusCode`.
    pub status: u16,
    /// Header names lower-cased, single values.
    pub headers: serde_json::Map<String, Value>,
    /// The body, parsed as JSON when it is (else a JSON string).
    pub body: Value,
    /// The response JSON as the runtime would post it.
    pub raw: Value,
}

impl LambdaReply {
    /// A header ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(Value::as_str).unwrap_or("")
    }
}

/// Invokes `router` (wrapped as `shared::lambda::run` wraps it) with `event`.
pub async fn invoke(router: &Router, event: Value) -> LambdaReply {
    let request: LambdaRequest =
        serde_json::from_value(event).expect("lambda_http parses the event");
    let mut adapter = Adapter::from(shared::lambda::handler(router.clone()));
    let context = lambda_http::Context::default();
    let response = adapter
        .call(LambdaEvent::new(request, context))
        .await
        .expect("the handler never returns Err to the runtime");
    let raw = serde_json::to_value(&response).expect("response serialises");
    let status = raw["statusCode"].as_u64().expect("statusCode") as u16;
    // REST API responses carry headers in `multiValueHeaders`, HTTP API ones in `headers`.
    let mut headers = serde_json::Map::new();
    for (k, v) in raw["multiValueHeaders"].as_object().into_iter().flatten() {
        if let Some(first) = v.get(0) {
            headers.insert(k.to_lowercase(), first.clone());
        }
    }
    for (k, v) in raw["headers"].as_object().into_iter().flatten() {
        headers.insert(k.to_lowercase(), v.clone());
    }
    let text = match (&raw["body"], raw["isBase64Encoded"].as_bool()) {
        // A binary body (gzip) is left to the test, in `raw`.
        (Value::String(b), Some(true)) => String::from_utf8(unbase64(b)).unwrap_or_default(),
        (Value::String(b), _) => b.clone(),
        _ => String::new(),
    };
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    LambdaReply {
        status,
        headers,
        body,
        raw,
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("utf-8 path")
        .into_owned()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes a base64 body.
pub fn unbase64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 body")
}
