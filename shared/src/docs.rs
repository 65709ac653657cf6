//! The problem+json answers every operation shares, added to the OpenAPI document in one
//! place instead of being spelled on every handler: what an operation can fail with follows
//! from what it reads (path, query, body). Handlers annotate only their own answers (their
//! 2xx, 404, 409, ...); an answer they spell out is never overwritten here.

use utoipa::openapi::{
    Content, OpenApi, Ref, RefOr, ResponseBuilder,
    path::{Operation, ParameterIn},
};

/// Adds to every operation of `api` the shared error answers it can give:
/// - a body: 400 (not JSON), 413 (too large), 415 (not `application/json`), 422 (a field);
/// - path parameters: 400 (empty, too long, not UTF-8);
/// - query parameters: 400 (not UTF-8), 422 (a parameter);
/// - every operation: 503 (Redis unreachable or too slow, with `Retry-After`).
pub fn add_problem_responses(api: &mut OpenApi) {
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_to(op);
        }
    }
}

fn add_to(op: &mut Operation) {
    let located = |place: ParameterIn| {
        op.parameters.iter().flatten().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let (path, query, body) = (
        located(ParameterIn::Path),
        located(ParameterIn::Query),
        op.request_body.is_some(),
    );
    let mut answers = Vec::new();
    if path || query || body {
        answers.push((
            "400",
            "The request cannot be read (malformed JSON, bad path parameter, query not UTF-8)",
        ));
    }
    if body {
        answers.push(("413", "Body larger than MAX_BODY_BYTES"));
        answers.push(("415", "Body is not JSON"));
    }
    if query || body {
        answers.push((
            "422",
            "A field or parameter is missing, of the wrong type or out of range; `field` names it",
        ));
    }
    answers.push((
        "503",
        "Redis is unreachable or timed out (with Retry-After)",
    ));
    for (code, description) in answers {
        op.responses
            .responses
            .entry(code.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/problem+json",
                            Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
                        )
                        .build(),
                )
            });
    }
}
