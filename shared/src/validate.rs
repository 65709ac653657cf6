//! Checks of request values, each failing with a 422 problem that names the field, and the
//! JSON Schemas that state the same rules in the OpenAPI document (built from the same
//! constants, so the two cannot drift).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};

use crate::error::ApiError;

/// `value` within `min..=max`.
pub fn range<T>(field: &str, value: T, min: T, max: T) -> Result<T, ApiError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    // Written as "not within" so that a NaN (which `f64` parsing accepts) fails too.
    let within = value >= min && value <= max;
    if !within {
        return Err(ApiError::validation(
            field,
            format!("{field} must be from {min} to {max}, got {value}"),
        ));
    }
    Ok(value)
}

/// The inclusive bounds of a number: one constant per rule, next to its model, read by the
/// handler's check ([`Bounds::check`]) and compared with the OpenAPI document by a test
/// (the schema attributes take only literals).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds<T> {
    /// Smallest allowed value.
    pub min: T,
    /// Largest allowed value.
    pub max: T,
}

impl<T: PartialOrd + std::fmt::Display + Copy> Bounds<T> {
    /// `min..=max`.
    pub const fn new(min: T, max: T) -> Self {
        Self { min, max }
    }

    /// `value` within the bounds, else a 422 naming `field`.
    pub fn check(&self, field: &str, value: T) -> Result<T, ApiError> {
        range(field, value, self.min, self.max)
    }
}

/// A rule with the value an absent parameter or field takes: bounds and default in one
/// constant, read by the serde default, the handler's check and the schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaulted<T> {
    /// The allowed values.
    pub bounds: Bounds<T>,
    /// The value when none is given.
    pub default: T,
}

impl<T: PartialOrd + std::fmt::Display + Copy> Defaulted<T> {
    /// `min..=max`, `default` when absent.
    pub const fn new(min: T, max: T, default: T) -> Self {
        Self::of(Bounds::new(min, max), default)
    }

    /// `bounds`, `default` when absent.
    pub const fn of(bounds: Bounds<T>, default: T) -> Self {
        Self { bounds, default }
    }

    /// `value` within the bounds, else a 422 naming `field`.
    pub fn check(&self, field: &str, value: T) -> Result<T, ApiError> {
        self.bounds.check(field, value)
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Bounds<T> {
    /// `1..=86400`, as descriptions state a range.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..={}", self.min, self.max)
    }
}

/// A number type's JSON Schema `type` and `format`, as utoipa derives them.
pub trait SchemaNumber: Copy + Into<utoipa::Number> + Into<serde_json::Value> {
    /// `integer` or `number`.
    const TYPE: Type;
    /// `int32`, `int64` or `double`.
    const FORMAT: KnownFormat;
}

/// `impl SchemaNumber` for each number type the rules use.
macro_rules! schema_numbers {
    ($($number:ty => $type:ident, $format:ident;)+) => {$(
        impl SchemaNumber for $number {
            const TYPE: Type = Type::$type;
            const FORMAT: KnownFormat = KnownFormat::$format;
        }
    )+};
}

schema_numbers! {
    u32 => Integer, Int32;
    u64 => Integer, Int64;
    i64 => Integer, Int64;
    f64 => Number, Double;
}

impl<T: SchemaNumber> Bounds<T> {
    /// The JSON Schema of a value within the bounds.
    pub fn schema(&self) -> ObjectBuilder {
        self.schema_of(T::TYPE.into())
    }

    /// [`Bounds::schema`] for an optional body field: `null` is allowed too.
    pub fn nullable_schema(&self) -> ObjectBuilder {
        self.schema_of(SchemaType::from_iter([T::TYPE, Type::Null]))
    }

    fn schema_of(&self, schema_type: SchemaType) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(schema_type)
            .format(Some(SchemaFormat::KnownFormat(T::FORMAT)))
            .minimum(Some(self.min))
            .maximum(Some(self.max))
    }
}

/// Declares the schema types of query parameters from their rules ([`Defaulted`]):
/// `#[param(inline, value_type = Name)]` on the field makes the OpenAPI document state
/// exactly what the handler's check enforces and what an absent parameter means.
macro_rules! query_parameters {
    ($($(#[$doc:meta])* $name:ident = $rule:expr;)+) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let rule = $rule;
                rule.bounds
                    .schema()
                    .default(Some(rule.default.into()))
                    .build()
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    )+};
}

pub(crate) use query_parameters;

/// The JSON Schema of [`text`]: not blank ([`NON_BLANK`]), 1 to `max_chars` characters.
pub fn text_schema(max_chars: usize, nullable: bool) -> ObjectBuilder {
    string_schema(nullable)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(NON_BLANK))
}

/// The JSON Schema of [`email`]: [`EMAIL`], at most [`MAX_EMAIL_CHARS`] characters.
pub fn email_schema() -> ObjectBuilder {
    string_schema(false)
        .max_length(Some(MAX_EMAIL_CHARS))
        .pattern(Some(EMAIL))
}

/// A string, or a string or `null`.
pub fn string_schema(nullable: bool) -> ObjectBuilder {
    if nullable {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    } else {
        ObjectBuilder::new().schema_type(Type::String)
    }
}

/// Longest e-mail address, in characters (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

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

/// An e-mail address matching [`EMAIL`], at most [`MAX_EMAIL_CHARS`] characters. Deliberately not RFC 5322
/// in full: that would accept addresses no mail system delivers.
pub fn email<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let valid = value.chars().count() <= MAX_EMAIL_CHARS && matches_email_pattern(value);
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
