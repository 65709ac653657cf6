//! One rule for query parameters on every route: a parameter the route's OpenAPI
//! description does not declare is a 422 problem naming it, whatever the method, and no
//! handler runs.
//!
//! Routes that read their query through `ApiQuery` refused unknown names already (their
//! structs deny unknown fields), but routes that read none — `POST /stats/reset`,
//! `POST /lock/{resource}/acquire`'s body-less siblings, `/health` — ran with whatever was
//! sent, so a misspelt parameter was silently ignored on some routes and refused on others.
//! `shared::http::guard` applies it, with the method rule, to every function's own routes,
//! so the runner and the Lambda functions answer alike.

use std::collections::{HashMap, HashSet};

use axum::{
    extract::Request,
    http::Method,
    response::{IntoResponse, Response},
};
use utoipa::openapi::{
    OpenApi, RefOr,
    path::{Operation, ParameterIn, PathItem},
};

use crate::error::ApiError;

/// The operations of a path item by the method that calls them (HEAD calls GET's).
pub(crate) fn operations(item: &PathItem) -> [(Method, &Option<Operation>); 6] {
    [
        (Method::GET, &item.get),
        (Method::HEAD, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
    ]
}

/// The query parameters each path template declares, per method.
pub(crate) type Declared = HashMap<String, Vec<(Method, HashSet<String>)>>;

/// Refuses, on every route of `router` that `openapi` describes, the query parameters its
/// operation does not declare (see the module header). HEAD is checked as its GET.
/// The query parameters each operation declares: `{path: [(method, names)]}`.
pub(crate) fn declared(openapi: &OpenApi) -> Declared {
    let mut declared = Declared::new();
    for (path, item) in &openapi.paths.paths {
        for (method, operation) in operations(item) {
            if let Some(operation) = operation {
                declared
                    .entry(path.clone())
                    .or_default()
                    .push((method, query_names(operation)));
            }
        }
    }
    declared
}

fn query_names(operation: &Operation) -> HashSet<String> {
    operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|parameter| match parameter {
            RefOr::T(p) if p.parameter_in == ParameterIn::Query => Some(p.name.clone()),
            _ => None,
        })
        .collect()
}

/// The refusal of `request`'s query on a route whose operations declare `operations`, or
/// `None` when every parameter is declared.
pub(crate) fn refusal(
    operations: &[(Method, HashSet<String>)],
    request: &Request,
) -> Option<Response> {
    let query = request.uri().query().filter(|q| !q.is_empty())?;
    let allowed = operations
        .iter()
        .find(|(method, _)| method == request.method())
        .map(|(_, names)| names)?;
    // Names are compared decoded; bytes that are not UTF-8 are refused as `ApiQuery` does.
    if percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_err()
    {
        return Some(
            ApiError::BadRequest {
                detail: "the query string is not valid UTF-8 once percent-decoded".to_owned(),
                field: None,
            }
            .into_response(),
        );
    }
    let unknown = form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name)
        .find(|name| !allowed.contains(name.as_ref()));
    match unknown {
        None => None,
        Some(name) => {
            let mut names: Vec<&str> = allowed.iter().map(String::as_str).collect();
            names.sort_unstable();
            let takes = if names.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!("this route takes {}", names.join(", "))
            };
            Some(
                ApiError::validation(
                    name.as_ref(),
                    format!("unknown query parameter `{name}`: {takes}"),
                )
                .into_response(),
            )
        }
    }
}
