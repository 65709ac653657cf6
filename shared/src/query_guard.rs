//! One rule for query parameters on every route: a parameter the route's OpenAPI
//! description does not declare is a 422 problem naming it, whatever the method, and no
//! handler runs.
//!
//! Routes that read their query through `ApiQuery` refused unknown names already (their
//! structs deny unknown fields), but routes that read none — `POST /stats/reset`,
//! `POST /lock/{resource}/acquire`'s body-less siblings, `/health` — ran with whatever was
//! sent, so a misspelt parameter was silently ignored on some routes and refused on others.
//! [`guard_query`] is applied by every function to its own routes, so the runner and the
//! Lambda functions answer alike.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::Method,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use utoipa::openapi::{
    OpenApi, RefOr,
    path::{Operation, ParameterIn},
};

use crate::error::ApiError;

/// The query parameters each path template declares, per method.
type Declared = HashMap<String, Vec<(Method, HashSet<String>)>>;

/// Refuses, on every route of `router` that `openapi` describes, the query parameters its
/// operation does not declare (see the module header). HEAD is checked as its GET.
pub fn guard_query<S>(router: Router<S>, openapi: &OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut declared = Declared::new();
    for (path, item) in &openapi.paths.paths {
        let operations = [
            (Method::GET, &item.get),
            (Method::HEAD, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                declared
                    .entry(path.clone())
                    .or_default()
                    .push((method, query_names(operation)));
            }
        }
    }
    let declared = Arc::new(declared);
    router.route_layer(middleware::from_fn(move |request: Request, next: Next| {
        let declared = declared.clone();
        async move { check(&declared, request, next).await }
    }))
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

async fn check(declared: &Declared, request: Request, next: Next) -> Response {
    let Some(query) = request.uri().query().filter(|q| !q.is_empty()) else {
        return next.run(request).await;
    };
    let allowed = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| declared.get(path.as_str()))
        .and_then(|methods| {
            methods
                .iter()
                .find(|(method, _)| method == request.method())
                .map(|(_, names)| names)
        });
    let Some(allowed) = allowed else {
        return next.run(request).await;
    };
    // Names are compared decoded; bytes that are not UTF-8 are refused as `ApiQuery` does.
    if percent_encoding::percent_decode_str(query)
        .decode_utf8()
        .is_err()
    {
        return ApiError::BadRequest {
            detail: "the query string is not valid UTF-8 once percent-decoded".to_owned(),
            field: None,
        }
        .into_response();
    }
    let unknown = form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name)
        .find(|name| !allowed.contains(name.as_ref()));
    match unknown {
        None => next.run(request).await,
        Some(name) => {
            let mut names: Vec<&str> = allowed.iter().map(String::as_str).collect();
            names.sort_unstable();
            let takes = if names.is_empty() {
                "this route takes no query parameters".to_owned()
            } else {
                format!("this route takes {}", names.join(", "))
            };
            ApiError::validation(
                name.as_ref(),
                format!("unknown query parameter `{name}`: {takes}"),
            )
            .into_response()
        }
    }
}
