//! The embedded Swagger UI and ReDoc files (prepared by `build.rs`), served with the
//! encoding the client accepts, an ETag and a day of caching.
//!
//! Text files are stored gzip-compressed. A client that accepts gzip (every browser) gets
//! those bytes as they are; any other gets them inflated on the way out.

use std::io::Read;

use axum::{
    Router,
    http::{
        HeaderMap, HeaderValue, StatusCode,
        header::{
            ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
            VARY,
        },
    },
    response::{IntoResponse, Response},
    routing::get,
};
use flate2::read::GzDecoder;
use shared::ApiError;

/// One embedded file.
pub(crate) struct Asset {
    /// Where it is served, e.g. `/docs/swagger-ui.css`.
    pub(crate) route: &'static str,
    pub(crate) content_type: &'static str,
    /// The file, gzip-compressed when `gzipped`.
    pub(crate) bytes: &'static [u8],
    pub(crate) gzipped: bool,
    /// A weak validator of the uncompressed content, quoted.
    pub(crate) etag: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// A route for every embedded file.
pub(crate) fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.route,
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        )
    })
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(ETAG, HeaderValue::from_static(asset.etag));
    if asset.gzipped {
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, asset.etag))
    {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if !asset.gzipped {
        return (headers, asset.bytes).into_response();
    }
    let accepts_gzip = request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(accepts_gzip);
    if accepts_gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (headers, asset.bytes).into_response();
    }
    let mut plain = Vec::new();
    match GzDecoder::new(asset.bytes).read_to_end(&mut plain) {
        Ok(_) => (headers, plain).into_response(),
        Err(e) => {
            ApiError::Internal(format!("embedded asset {}: {e}", asset.route)).into_response()
        }
    }
}

/// Whether an `Accept-Encoding` value admits gzip (RFC 9110 §12.5.3): `gzip`, `x-gzip` or `*`
/// with a non-zero q-value. An explicit `gzip;q=0` wins over `*`.
fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut wildcard = false;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return q > 0.0;
        }
        if coding == "*" {
            wildcard = q > 0.0;
        }
    }
    wildcard
}

/// `If-None-Match` (RFC 9110 §13.1.2): `*`, or a list of entity tags compared weakly.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .any(|tag| opaque(tag) == opaque(etag))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn gzip_is_accepted_unless_refused() {
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, gzip;q=0.8, *;q=0.1",
            "GZIP",
            "x-gzip",
            "*",
            "identity, *;q=0.5",
        ] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br",
            "gzip;q=0",
            "gzip; q=0.0",
            "*, gzip;q=0",
            "*;q=0",
        ] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = "W/\"00ff\"";
        assert!(etag_matches("W/\"00ff\"", etag));
        assert!(etag_matches("\"00ff\"", etag));
        assert!(etag_matches("\"aa\", W/\"00ff\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"00fe\"", etag));
        assert!(!etag_matches("", etag));
    }

    #[test]
    fn every_asset_inflates_and_is_routed_once() {
        let mut routes = std::collections::HashSet::new();
        for asset in ASSETS {
            assert!(routes.insert(asset.route), "{} twice", asset.route);
            if asset.gzipped {
                let mut plain = Vec::new();
                GzDecoder::new(asset.bytes).read_to_end(&mut plain).unwrap();
                assert!(plain.len() > asset.bytes.len(), "{}", asset.route);
            }
        }
        assert!(routes.contains("/docs/swagger-ui-bundle.js"));
        assert!(routes.contains("/redoc/redoc.standalone.js"));
    }
}
