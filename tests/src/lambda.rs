//! Driving a function's router the way the Lambda runtime does: an event's JSON is parsed
//! by `lambda_http` into a request, the router answers, and `lambda_http` turns the answer
//! into the response JSON API Gateway expects.
//!
//! The events follow what each front door is documented (or, where AWS is silent, has been
//! observed) to deliver, not our own idea of it; each rule cites its source where it is
//! applied. In short: an HTTP API decodes the path (a decoded `?` cuts it), a REST API and a
//! Function URL hand it over as the client sent it; query strings stay encoded in v2's
//! `rawQueryString`; repeated query parameters and headers are comma-joined in v2 and listed
//! in v1's `multiValue*` maps; cookies are v2's `cookies` array and v1's `Cookie` header.

use axum::Router;
use lambda_http::{Adapter, Service, lambda_runtime::LambdaEvent, request::LambdaRequest};
use serde_json::{Map, Value, json};

/// Which front door the event comes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Query parameters, decoded; a name may repeat.
    pub query: &'a [(&'a str, &'a str)],
    /// Extra request headers (lower-case names); a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// Cookies, `name=value` each.
    pub cookies: &'a [&'a str],
    /// The body, if any.
    pub body: Option<&'a str>,
    /// Send the body base64-encoded, as API Gateway does for binary media types.
    pub base64: bool,
}

impl<'a> Call<'a> {
    /// `method path`, nothing else.
    pub fn to(method: &'a str, path: &'a str) -> Self {
        Self {
            method,
            path,
            ..Self::default()
        }
    }
}

/// One function's router as its `main` builds it (`shared::lambda::serve`), on the test's
/// state.
pub fn function(app: &crate::TestApp, router: fn(shared::AppState) -> Router) -> Router {
    shared::http::finish(router(app.state.clone()), &app.state.config)
}

/// The front door answered by itself: the function is not invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The status the front door answers.
    pub status: u16,
}

/// The event JSON `source` would deliver for `call`. Panics when the front door would
/// refuse the request itself (see [`front_door`]).
pub fn event(source: Source, call: &Call<'_>) -> Value {
    front_door(source, call).expect("the front door passes this request on")
}

/// The path an HTTP API hands over for `path` as sent: percent-decoded, and cut at a
/// decoded `?` (what follows is not sent at all). "API Gateway decodes URL-encoded request
/// parameters before passing them to your backend integration"
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html>).
/// Decoded once more when the result still holds an escape (`%252F` reaches the function
/// as `/`), and a `%` that is then no escape is refused with a 400: both observed on live
/// HTTP APIs (Stack Exchange "AWS API Gateway expects the request URL to be encoded twice",
/// summarised at <https://www.volcengine.com/article/1333845>; captures cited in
/// <https://github.com/middleapi/standard-server/pull/93>), not documented by AWS.
pub fn http_api_path(path: &str) -> Result<String, Refused> {
    let once = decode(path).ok_or(Refused { status: 400 })?;
    let twice = if once.contains('%') {
        decode(&once).ok_or(Refused { status: 400 })?
    } else {
        once
    };
    Ok(match twice.split_once('?') {
        Some((before, _)) => before.to_owned(),
        None => twice,
    })
}

/// The event `source` would deliver for `call`, or how the front door refuses it.
pub fn front_door(source: Source, call: &Call<'_>) -> Result<Value, Refused> {
    let body = call.body.map(|b| {
        if call.base64 {
            base64(b.as_bytes())
        } else {
            b.to_owned()
        }
    });
    // Headers as a list first: v1 and v2 fold repeated ones differently.
    let mut header_list: Vec<(String, String)> = vec![("user-agent".into(), "test".into())];
    if call.body.is_some() {
        header_list.push(("content-type".into(), "application/json".into()));
    }
    for (k, v) in call.headers {
        header_list.push(((*k).to_owned(), (*v).to_owned()));
    }
    let raw_query: Vec<String> = call
        .query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    match source {
        // REST API proxy integration input, payload v1: `queryStringParameters` keeps the
        // last value of a repeated name, `multiValueQueryStringParameters` all of them; the
        // same for headers; cookies are a plain `Cookie` header
        // (<https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html#api-gateway-simple-proxy-for-lambda-input-format>).
        // `path` is the resource path as the client sent it, still percent-encoded (observed,
        // <https://github.com/middleapi/standard-server/pull/93>), and without the stage,
        // which only `requestContext.path` carries.
        Source::RestV1 => {
            let mut list = header_list;
            list.push(("host".into(), "api.example.com".into()));
            if !call.cookies.is_empty() {
                list.push(("cookie".into(), call.cookies.join("; ")));
            }
            let (single, multi) = v1_maps(&list);
            let query: Vec<(String, String)> = call
                .query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let (query_single, query_multi) = v1_maps(&query);
            let none_if_empty = |m: Map<String, Value>| {
                if m.is_empty() {
                    Value::Null
                } else {
                    Value::Object(m)
                }
            };
            Ok(json!({
                "resource": "/{proxy+}",
                "path": call.path,
                "httpMethod": call.method,
                "headers": single,
                "multiValueHeaders": multi,
                "queryStringParameters": none_if_empty(query_single),
                "multiValueQueryStringParameters": none_if_empty(query_multi),
                "pathParameters": {"proxy": call.path.trim_start_matches('/')},
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
                    "path": format!("/prod{}", call.path),
                    "protocol": "HTTP/1.1",
                    "domainName": "api.example.com"
                },
                "body": body,
                "isBase64Encoded": call.base64
            }))
        }
        // Payload v2 (HTTP API and Function URL): repeated headers and query parameters are
        // joined with commas, cookies come as the `cookies` array and no `Cookie` header,
        // `rawQueryString` is the query as sent
        // (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>,
        // <https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html>).
        Source::HttpV2 | Source::FunctionUrl => {
            let (domain, path) = match source {
                // A Function URL keeps the path encoded (observed, like a REST API:
                // <https://github.com/middleapi/standard-server/pull/93>).
                Source::FunctionUrl => (
                    "abcdefghij.lambda-url.eu-west-1.on.aws",
                    call.path.to_owned(),
                ),
                _ => ("api.example.com", http_api_path(call.path)?),
            };
            let mut list = header_list;
            list.push(("host".into(), domain.into()));
            let headers = v2_map(&list);
            let query: Vec<(String, String)> = call
                .query
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let query_map = v2_map(&query);
            let mut event = json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": path,
                "rawQueryString": raw_query.join("&"),
                "headers": headers,
                "queryStringParameters": if query_map.is_empty() { Value::Null } else { Value::Object(query_map) },
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "abcdefghij",
                    "domainName": domain,
                    "domainPrefix": "abcdefghij",
                    "http": {
                        "method": call.method,
                        "path": path,
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
            });
            if !call.cookies.is_empty() {
                event["cookies"] = json!(call.cookies);
            }
            Ok(event)
        }
    }
}

/// v1's single-value map (the last value of a repeated name) and multi-value map.
fn v1_maps(pairs: &[(String, String)]) -> (Map<String, Value>, Map<String, Value>) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (k, v) in pairs {
        single.insert(k.clone(), json!(v));
        match multi.get_mut(k).and_then(Value::as_array_mut) {
            Some(values) => values.push(json!(v)),
            None => {
                multi.insert(k.clone(), json!([v]));
            }
        }
    }
    (single, multi)
}

/// v2's map: the values of a repeated name joined with commas.
fn v2_map(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in pairs {
        let joined = match map.get(k).and_then(Value::as_str) {
            Some(before) => format!("{before},{v}"),
            None => v.clone(),
        };
        map.insert(k.clone(), json!(joined));
    }
    map
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

/// Percent-decodes `s`; `None` when a `%` starts no escape or the bytes are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !escapes_ok {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|d| d.into_owned())
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
