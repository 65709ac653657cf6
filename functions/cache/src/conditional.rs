//! HTTP preconditions on cache entries (RFC 9110 §13.1): every entry has an entity tag (the
//! SHA-1 of its stored value, strong), sent as `ETag`. A read with `If-None-Match` naming it
//! is a 304; a write with `If-Match` is a compare-and-set (412 when the entry changed since
//! it was read) and `If-None-Match: *` creates only (412 when the entry exists).
//!
//! A malformed header is a 400 naming it rather than being ignored: a client that believes
//! its write is conditional must not have it applied unconditionally.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderName, HeaderValue, header, request::Parts},
};
use shared::ApiError;

/// The value of an `If-Match` or `If-None-Match` header: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tags {
    /// `*`: any current entry.
    Any,
    /// The listed entity tags.
    List(Vec<Tag>),
}

/// One entity tag: its opaque part (between the quotes) and whether it was weak (`W/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    /// `W/"..."`.
    pub(crate) weak: bool,
    /// What stands between the quotes.
    pub(crate) opaque: String,
}

impl Tags {
    /// Strong comparison (`If-Match`): a weak tag never matches.
    pub(crate) fn matches_strong(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(tags) => tags.iter().any(|t| !t.weak && t.opaque == current),
        }
    }

    /// Weak comparison (`If-None-Match`): `W/` is ignored.
    pub(crate) fn matches_weak(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(tags) => tags.iter().any(|t| t.opaque == current),
        }
    }

    /// The tags a strong comparison can match, for the write script.
    pub(crate) fn strong(&self) -> impl Iterator<Item = &str> {
        let tags = match self {
            Self::Any => &[][..],
            Self::List(tags) => &tags[..],
        };
        tags.iter().filter(|t| !t.weak).map(|t| t.opaque.as_str())
    }

    /// Every listed tag, for a weak comparison in the write script.
    pub(crate) fn all(&self) -> impl Iterator<Item = &str> {
        let tags = match self {
            Self::Any => &[][..],
            Self::List(tags) => &tags[..],
        };
        tags.iter().map(|t| t.opaque.as_str())
    }
}

/// A request's `If-Match` and `If-None-Match`, parsed (each `None` when absent).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    /// `If-Match`.
    pub(crate) if_match: Option<Tags>,
    /// `If-None-Match`.
    pub(crate) if_none_match: Option<Tags>,
}

impl<S: Send + Sync> FromRequestParts<S> for Preconditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            if_match: parse(&parts.headers, header::IF_MATCH, "If-Match")?,
            if_none_match: parse(&parts.headers, header::IF_NONE_MATCH, "If-None-Match")?,
        })
    }
}

impl Preconditions {
    /// Whether the request carries any.
    pub(crate) fn any(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// Whether `If-Match` names `current` only as a weak tag (so it failed for that alone).
    pub(crate) fn only_weak_match(&self, current: Option<&str>) -> bool {
        let (Some(Tags::List(tags)), Some(current)) = (&self.if_match, current) else {
            return false;
        };
        tags.iter().any(|t| t.weak && t.opaque == current)
            && !tags.iter().any(|t| !t.weak && t.opaque == current)
    }

    /// The four arguments `cache_condition.lua` takes: each header's mode, then each one's
    /// tags, comma-separated. A tag with a comma in it can never be one of ours (hex), so it
    /// is left out: it could only fail to match anyway.
    pub(crate) fn script_args(&self) -> [String; 4] {
        let join = |tags: Vec<&str>| {
            tags.into_iter()
                .filter(|t| !t.contains(','))
                .collect::<Vec<_>>()
                .join(",")
        };
        let (if_match, match_tags) = match &self.if_match {
            None => ("any", String::new()),
            Some(Tags::Any) => ("present", String::new()),
            Some(tags) => ("match", join(tags.strong().collect())),
        };
        let (if_none_match, none_tags) = match &self.if_none_match {
            None => ("any", String::new()),
            Some(Tags::Any) => ("absent", String::new()),
            Some(tags) => ("none-match", join(tags.all().collect())),
        };
        [if_match.into(), if_none_match.into(), match_tags, none_tags]
    }
}

/// The entity tag `opaque` as the `ETag` header carries it.
pub(crate) fn etag_header(opaque: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("\"{opaque}\"")).ok()
}

/// Every line of header `name` as one list (a header may be sent several times).
fn parse(headers: &HeaderMap, name: HeaderName, field: &str) -> Result<Option<Tags>, ApiError> {
    let mut lines = headers.get_all(&name).iter().peekable();
    if lines.peek().is_none() {
        return Ok(None);
    }
    let mut joined = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(line.as_bytes());
    }
    parse_list(&joined)
        .map(Some)
        .map_err(|why| ApiError::bad_request(field, format!("{field} {why}")))
}

/// `*`, or `#entity-tag` where `entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE` (RFC 9110 §8.8.3).
fn parse_list(value: &[u8]) -> Result<Tags, String> {
    let trimmed = value.trim_ascii();
    if trimmed == b"*" {
        return Ok(Tags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = trimmed;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            break;
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let Some(inner) = quoted.strip_prefix(b"\"") else {
            return Err(
                "must be * or entity tags in double quotes (\"abc\", W/\"abc\"), comma-separated"
                    .to_owned(),
            );
        };
        let Some(end) = inner.iter().position(|&b| b == b'"') else {
            return Err("has an entity tag without its closing double quote".to_owned());
        };
        let opaque = &inner[..end];
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b))
        {
            return Err("has an entity tag with a space or control character".to_owned());
        }
        tags.push(Tag {
            weak,
            opaque: String::from_utf8_lossy(opaque).into_owned(),
        });
        rest = inner[end + 1..].trim_ascii_start();
        if !(rest.is_empty() || rest.starts_with(b",")) {
            return Err("must separate entity tags with commas".to_owned());
        }
    }
    if tags.is_empty() {
        return Err("is empty: send * or at least one entity tag".to_owned());
    }
    Ok(Tags::List(tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> Tag {
        Tag {
            weak,
            opaque: opaque.to_owned(),
        }
    }

    #[test]
    fn lists_stars_and_weak_tags_parse() {
        assert_eq!(parse_list(b" * "), Ok(Tags::Any));
        assert_eq!(
            parse_list(b"\"a\", W/\"b\" ,,\"\""),
            Ok(Tags::List(vec![
                tag(false, "a"),
                tag(true, "b"),
                tag(false, "")
            ]))
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            &b""[..],
            b"abc",
            b"\"abc",
            b"\"a\" \"b\"",
            b"\"a b\"",
            b"*, \"a\"",
            b",",
        ] {
            assert!(parse_list(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn if_match_is_strong_and_if_none_match_weak() {
        let tags = Tags::List(vec![tag(true, "x")]);
        assert!(!tags.matches_strong("x"));
        assert!(tags.matches_weak("x"));
        assert!(Tags::Any.matches_strong("anything"));
    }
}
