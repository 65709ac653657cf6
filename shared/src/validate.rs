//! Checks of request values, each failing with a 422 problem that names the field.

use crate::error::ApiError;

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

/// An identifier given in a body that is later read back through a URL path (cache key,
/// user id): [`crate::keys::path_identifier`]'s rule, refused as a 422 like every body field.
pub fn path_identifier<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    crate::keys::path_identifier(field, value)
        .map_err(|e| ApiError::validation(field, e.to_string()))
}

/// JSON Schema `pattern` of non-blank text: at least one character that is not ASCII
/// whitespace. Spelled with an explicit class, not `\S`, because `\s` differs between the
/// regex dialects that read the schema (Rust, Python, ECMAScript).
pub const NON_BLANK: &str = r"[^\t\n\v\f\r ]";

/// JSON Schema `pattern` of an e-mail address, and the check [`email`] applies: ASCII
/// `local@domain.tld` (internationalised domains in their punycode form).
pub const EMAIL: &str = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// Text that holds something other than ASCII whitespace ([`NON_BLANK`]), at most
/// `max_chars` characters.
pub fn text<'a>(field: &str, value: &'a str, max_chars: usize) -> Result<&'a str, ApiError> {
    if value
        .chars()
        .all(|c| matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' '))
    {
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

/// An e-mail address matching [`EMAIL`], at most 254 characters. Deliberately not RFC 5322
/// in full: that would accept addresses no mail system delivers.
pub fn email<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let valid = value.len() <= 254 && matches_email_pattern(value);
    if !valid {
        return Err(ApiError::validation(
            field,
            format!("{field} must be an e-mail address like name@example.com, got {value:?}"),
        ));
    }
    Ok(value)
}

/// [`EMAIL`], spelled out (no regex engine in every Lambda binary for one pattern).
fn matches_email_pattern(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        (1..=63).contains(&b.len())
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    (1..=64).contains(&local.len())
        && local
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c))
        && domain.split('.').count() >= 2
        && domain.split('.').all(label_ok)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The hand-written check agrees with the published pattern.
    #[test]
    fn email_check_agrees_with_the_pattern() {
        let re = regex::Regex::new(super::EMAIL).unwrap();
        for s in [
            "a@b.c",
            "a@b",
            "a.b@c-d.e",
            "-a@b.c",
            "a@-b.c",
            "a@b-.c",
            "a@b..c",
            "@b.c",
            "a@@b.c",
            "a b@c.d",
            "ü@b.c",
            "a@b.c.",
            "a@.b.c",
            "a%+_.-@x1.y2",
            &"l".repeat(65),
            &format!("{}@b.c", "l".repeat(64)),
            &format!("{}@b.c", "l".repeat(65)),
            &format!("a@{}.c", "d".repeat(63)),
            &format!("a@{}.c", "d".repeat(64)),
        ] {
            assert_eq!(super::matches_email_pattern(s), re.is_match(s), "{s}");
        }
    }

    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "john@example.com",
            "a.b+c@sub.example.co.uk",
            "x@xn--exmple-cua.de",
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
            "ü@example.de",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_and_text() {
        assert!(range("age", 151, 0, 150).is_err());
        assert!(range("age", 0, 0, 150).is_ok());
        assert!(text("name", "  ", 10).is_err());
        assert!(text("name", "\t\r\n", 10).is_err());
        assert!(
            text("name", "\u{a0}", 10).is_ok(),
            "only ASCII whitespace is blank"
        );
        assert!(text("name", "Ann", 3).is_ok());
        assert!(text("name", "Anna", 3).is_err());
    }
}
