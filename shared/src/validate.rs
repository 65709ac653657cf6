//! Checks of request values, each failing with a 422 problem that names the field.

use crate::{error::ApiError, keys::MAX_IDENTIFIER_BYTES};

/// `value` within `min..=max`.
pub fn range<T>(field: &str, value: T, min: T, max: T) -> Result<T, ApiError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value < min || value > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be from {min} to {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// An identifier given in a body (key, user_id, task id): 1 to 512 bytes.
pub fn identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    crate::keys::identifier(field, value).map_err(|e| ApiError::validation(field, e.to_string()))
}

/// Text that must hold something other than whitespace, at most `max_chars` characters.
pub fn text<'a>(field: &str, value: &'a str, max_chars: usize) -> Result<&'a str, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::validation(
            field,
            format!("{field} must not be blank"),
        ));
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ApiError::validation(
            field,
            format!("{field} is {chars} characters long; at most {max_chars} are allowed"),
        ));
    }
    Ok(value)
}

/// A plausible e-mail address: `local@domain.tld`, no whitespace, at most 254 bytes.
/// Deliberately not RFC 5322 in full: that would accept addresses no mail system delivers.
pub fn email<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let invalid = || {
        ApiError::validation(
            field,
            format!("{field} must be an e-mail address like name@example.com, got {value:?}"),
        )
    };
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
    let labels_ok = domain.split('.').count() >= 2
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_ok {
        return Err(invalid());
    }
    Ok(value)
}

/// A parameter that must not exceed `MAX_IDENTIFIER_BYTES` (patterns, receipts).
pub fn bounded(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(ApiError::validation(
            field,
            format!("{field} is longer than {MAX_IDENTIFIER_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "john@example.com",
            "a.b+c@sub.example.co.uk",
            "ü@exämple.de",
        ] {
            assert!(email("email", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@example",
            "jo hn@example.com",
            "john@-example.com",
            "john@example..com",
            "a@b@example.com",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_and_text() {
        assert!(range("age", 151, 0, 150).is_err());
        assert!(range("age", 0, 0, 150).is_ok());
        assert!(text("name", "  ", 10).is_err());
        assert!(text("name", "Ann", 3).is_ok());
        assert!(text("name", "Anna", 3).is_err());
    }
}
