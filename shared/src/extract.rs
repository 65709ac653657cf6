//! Extractors whose rejections are [`ApiError`]s, so that a malformed body, query string or
//! path gets the same problem+json as any other error (axum's own answer plain text).
//!
//! Deserialisation goes through `serde_path_to_error`, so the error names the field at fault
//! (`ttl`, `tasks[3].priority`), which the README promises of every 4xx.

use axum::{
    extract::{FromRef, FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::{error::ApiError, models::ids::Identifier, state::AppState};

/// A JSON body (`Content-Type: application/json`, any `+json`, or no Content-Type).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            // No Content-Type at all: read the body as JSON, as FastAPI does.
            .unwrap_or(!req.headers().contains_key(header::CONTENT_TYPE));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType {
                detail: "the body must be JSON: send Content-Type: application/json".to_owned(),
            });
        }
        // Bodies are read as sent: a compressed one would only fail as "not JSON".
        if let Some(coding) = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return Err(ApiError::UnsupportedMediaType {
                detail: format!(
                    "Content-Encoding {} is not supported: send the JSON body uncompressed",
                    String::from_utf8_lossy(coding.as_bytes())
                ),
            });
        }
        let limit = AppState::from_ref(state).config.max_body_bytes;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_rejection(e, limit))?;
        parse_json(&bytes).map(Self)
    }
}

/// An optional JSON body (`Option<ApiJson<T>>`): `None` when the request's body is empty
/// (whatever its Content-Type); otherwise as [`ApiJson`].
impl<T, S> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        // An empty body is no body, whatever Content-Type says; a body is read as ApiJson
        // reads it (its media type and coding checked first).
        let (parts, body) = req.into_parts();
        let limit = AppState::from_ref(state).config.max_body_bytes;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| body_rejection(e, limit))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        <Self as FromRequest<S>>::from_request(req, state)
            .await
            .map(Some)
    }
}

/// Parses a JSON body, naming the field at fault on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::BadRequest {
                detail: format!("the body is not valid JSON: {inner}"),
                field: None,
            }
        } else {
            // serde_json appends where it stopped (" at line 1 column 12"); `field` already
            // says where, and a query string's errors have no such suffix.
            let suffix = format!(" at line {} column {}", inner.line(), inner.column());
            let message = inner.to_string();
            let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            let field = field_name(&path, &message);
            let message = in_plain_words(&field, &message);
            ApiError::validation(field, message)
        }
    })?;
    // A deserializer stops after the first value: without this, `{...} xyz` would be taken
    // for `{...}`. Only whitespace may follow the document.
    de.end().map_err(|e| ApiError::BadRequest {
        detail: format!("the body is not valid JSON: {e}"),
        field: None,
    })?;
    Ok(value)
}

/// A query string, deserialised into `T` (`?ttl=60&pattern=*`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // form_urlencoded would replace invalid UTF-8 with U+FFFD and carry on; refuse it.
        if percent_encoding::percent_decode_str(query)
            .decode_utf8()
            .is_err()
        {
            return Err(ApiError::BadRequest {
                detail: "the query string is not valid UTF-8 once percent-decoded".to_owned(),
                field: None,
            });
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(Self).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let field = field_name(&path, &message);
            let message = number_message(&field, &message, query).unwrap_or(message);
            ApiError::validation(field, message)
        })
    }
}

/// Rust's number-parsing messages ("invalid digit found in string") said in the API's words,
/// with the value sent: the parameter's range is then given by the check it did not reach.
fn number_message(field: &str, message: &str, query: &str) -> Option<String> {
    let expected = match message {
        "invalid digit found in string" => "a whole number in digits only",
        "number too large to fit in target type" => "a smaller whole number",
        "cannot parse integer from empty string" | "cannot parse float from empty string" => {
            "a number, not empty"
        }
        "invalid float literal" => "a number",
        _ => return None,
    };
    let sent = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Some(format!("{field} must be {expected}, got `{sent}`"))
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// The path parameter of a route with one, as an identifier type ([`Key`](crate::models::ids::Key),
/// ...), checked by its rule: a refusal is a 400 naming the field (a reserved queue name a
/// 422). A parameter that is not valid percent-encoded UTF-8 is a 400 too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: Identifier + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest {
                    // The one way a one-segment `String` parameter fails: bytes that are not
                    // UTF-8 once percent-decoded (axum's text names the route's placeholder,
                    // not the API's field).
                    detail: format!(
                        "{} is not valid UTF-8 once percent-decoded ({})",
                        T::FIELD,
                        e.body_text()
                    ),
                    field: Some(T::FIELD.to_owned()),
                })?;
        T::parse(raw).map(Self)
    }
}

/// Maps a failure to read the body to a problem (413 past the limit).
fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest {
            detail: format!("the body could not be read: {}", e.body_text()),
            field: None,
        }
    }
}

/// serde's messages about a body said in the API's words, the field first: "missing field
/// `value`" is "value is required"; "invalid type: string \"60\", expected a JSON number"
/// is "ttl must be a JSON number, got string \"60\""; the whole-number checks' "must not be
/// negative, got -1" gets its field. Anything else (already worded by the API) is kept.
fn in_plain_words(field: &str, message: &str) -> String {
    if message.starts_with("missing field `") {
        return format!("{field} is required");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.rsplit_once(", expected ")
    {
        // Rust's type names, as a client would say them.
        let expected = match expected {
            "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more",
            "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number",
            "f32" | "f64" => "a number",
            other => other,
        };
        return format!("{field} must be {expected}, got {got}");
    }
    if ["must ", "is too large"]
        .iter()
        .any(|start| message.starts_with(start))
    {
        return format!("{field} {message}");
    }
    message.to_owned()
}

/// The name of the field an error is about. serde reports a missing field at the path of
/// the object that lacks it (the name is in backticks in the message); an unknown field is
/// reported at its own path.
fn field_name(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let unknown = ["unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (missing, unknown, path) {
        (Some(name), _, "." | "") | (_, Some(name), "." | "") => name.to_owned(),
        (Some(name), _, parent) => format!("{parent}.{name}"),
        (None, _, "." | "") => "body".to_owned(),
        (None, _, path) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        key: String,
        ttl: Option<u64>,
    }

    fn field_of(json: &str) -> (u16, Option<String>) {
        match parse_json::<Body>(json.as_bytes()).unwrap_err() {
            ApiError::Validation { field, .. } => (422, Some(field)),
            ApiError::BadRequest { field, .. } => (400, field),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"ttl":1}"#), (422, Some("key".into())));
        assert_eq!(
            field_of(r#"{"key":"a","ttl":"x"}"#),
            (422, Some("ttl".into()))
        );
        assert_eq!(
            field_of(r#"{"key":"a","nope":1}"#),
            (422, Some("nope".into()))
        );
        assert_eq!(
            field_of(r#"{"key":"a","key":"b"}"#),
            (422, Some("key".into()))
        );
        assert_eq!(field_of(r#"{"key":"a""#), (400, None));
        assert_eq!(field_of("[]"), (422, Some("body".into())));
    }

    fn detail_of(json: &str) -> String {
        match parse_json::<Body>(json.as_bytes()).unwrap_err() {
            ApiError::Validation { detail, .. } => detail,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn serde_messages_are_said_in_the_apis_words() {
        assert_eq!(detail_of(r#"{"ttl":1}"#), "key is required");
        assert_eq!(
            detail_of(r#"{"key":"a","ttl":"60"}"#),
            "ttl must be a whole number, 0 or more, got string \"60\""
        );
        assert_eq!(
            detail_of(r#"{"key":5}"#),
            "key must be a string, got integer `5`"
        );
        // Unknown fields keep serde's list of the expected ones.
        assert!(detail_of(r#"{"key":"a","nope":1}"#).starts_with("unknown field `nope`"));
    }

    #[test]
    fn trailing_characters_are_refused() {
        let err = parse_json::<Body>(br#"{"key":"k"} xyz"#).unwrap_err();
        assert!(
            matches!(&err, ApiError::BadRequest { detail, .. } if detail.contains("trailing characters")),
            "{err:?}"
        );
        assert!(parse_json::<Body>(b"{\"key\":\"k\"} \r\n\t ").is_ok());
    }
}
