//! The problem+json answers every operation shares, added to the OpenAPI document in one
//! place instead of being spelled on every handler: what an operation can fail with follows
//! from what it reads (path, query, body). Handlers annotate only their own answers (their
//! 2xx, 404, 409, ...), an error answer by status and description alone: its body is the
//! problem here; an answer they spell out is never overwritten.

use utoipa::openapi::{
    Content, HeaderBuilder, ObjectBuilder, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type,
    path::{Operation, ParameterBuilder, ParameterIn},
};

use crate::{error::PROBLEM_JSON, idempotency};

/// Tags every operation of `api` that has no tag with `tag`: a function's routes are one
/// group of the documentation, named once rather than on every handler.
pub fn tag_operations(api: &mut OpenApi, tag: &str) {
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            op.tags.get_or_insert_with(|| vec![tag.to_owned()]);
        }
    }
}

/// Adds to every operation of `api` the shared error answers it can give:
/// - a body: 400 (not JSON), 415 (not `application/json`), 422 (a field);
/// - path parameters: 400 (empty, too long, not UTF-8);
/// - every operation: 400 (a query string that is not UTF-8), 413 (a body over
///   `MAX_BODY_BYTES`, read or not), 422 (a query parameter it does not declare, or one out
///   of range), 503 (Redis unreachable or too slow, with `Retry-After`);
/// - state-changing operations: the `Idempotency-Key` header (400 malformed, 422 reused).
pub fn add_problem_responses(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        // (state-changing, operation)
        let operations = [
            (false, &mut item.get),
            (true, &mut item.post),
            (true, &mut item.patch),
            (true, &mut item.put),
            (true, &mut item.delete),
        ];
        for (writes, op) in operations {
            if let Some(op) = op {
                if writes {
                    add_idempotency_key(op);
                }
                add_to(op);
            }
        }
    }
}

/// The `Idempotency-Key` header every state-changing operation accepts, the
/// `Idempotent-Replayed` header of a replayed answer, and the 400/422 the key can cause.
fn add_idempotency_key(op: &mut Operation) {
    let key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe (IETF draft-ietf-httpapi-idempotency-key-header): the first \
             outcome is recorded with the effect, atomically, for IDEMPOTENCY_TTL_SECS; the \
             same request with the same key gets that outcome again (with \
             `Idempotent-Replayed: true`) and changes nothing; the same key with another \
             request is a 422. Outcomes that changed nothing (409, 404) are not recorded.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(idempotency::MAX_KEY_CHARS))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    op.parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(key));
    for (code, response) in op.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) = (code.starts_with('2'), response) {
            response.headers.insert(
                "Idempotent-Replayed".to_owned(),
                RefOr::T(
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .enum_values(Some(["true"])),
                        ))
                        .description(Some(
                            "`true` when this answer is the recorded outcome of an earlier \
                             request with the same Idempotency-Key",
                        ))
                        .build(),
                ),
            );
        }
    }
}

fn add_to(op: &mut Operation) {
    // A handler declares its own error answers by status and description only
    // (`(status = 404, description = "Not found")`): every error answer is a problem.
    for (code, response) in op.responses.responses.iter_mut() {
        if let (true, RefOr::T(response)) = (code.starts_with(['4', '5']), response)
            && response.content.is_empty()
        {
            response
                .content
                .insert(PROBLEM_JSON.to_owned(), RefOr::T(problem_content()));
        }
    }
    let body = op.request_body.is_some();
    // Every operation can answer 400 (a query string that is not UTF-8), 413 (a body over
    // MAX_BODY_BYTES, read or not) and 422 (a query parameter it does not declare).
    let mut answers = vec![(
        "400",
        "The request cannot be read (malformed JSON or JSON followed by more than whitespace, \
         bad path parameter, query not UTF-8, malformed Idempotency-Key)",
    )];
    answers.push((
        "413",
        "Body larger than MAX_BODY_BYTES (on every operation, whether it reads a body or not)",
    ));
    if body {
        answers.push(("415", "Body is not JSON"));
    }
    answers.push((
        "422",
        "A field or parameter is missing, of the wrong type or out of range, a query \
         parameter the operation does not declare, or the Idempotency-Key was used for \
         another request; `field` names it",
    ));
    answers.push((
        "503",
        "Try again shortly (`Retry-After`): Redis is unreachable, too slow, loading or failing \
         over; or the request ran past REQUEST_TIMEOUT_MS (`outcome: unknown`: it may have \
         been applied, retry with the same Idempotency-Key); or, on the runner, \
         MAX_IN_FLIGHT_REQUESTS are in flight (`/problems/overloaded`: nothing was applied)",
    ));
    for (code, description) in answers {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(PROBLEM_JSON, problem_content());
                RefOr::T(response.build())
            });
    }
    // Every 503 (this one, or a handler's own) carries Retry-After.
    if let Some(RefOr::T(response)) = op.responses.responses.get_mut("503") {
        response
            .headers
            .entry("Retry-After".to_owned())
            .or_insert_with(|| RefOr::T(retry_after()));
    }
}

/// The `Retry-After` header of a 503: seconds to wait.
fn retry_after() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
        .description(Some("Seconds to wait before trying again"))
        .build()
}

/// `application/problem+json` content: the `Problem` schema.
fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
}
