//! Identifiers as validated types: a value of [`Key`], [`UserId`], [`Resource`],
//! [`QueueName`], [`SemaphoreName`], [`TaskId`], [`Token`], [`Receipt`], [`Glob`],
//! [`RateLimitUser`] or [`RateLimitCaller`] has passed its rule, so a handler that takes one
//! cannot forget the check.
//!
//! The rule is checked where the value is read, and the status follows from where that is:
//! - from a URL path ([`crate::ApiPath`]), a refusal is a 400 naming the field (the URL
//!   itself is wrong); a reserved queue name is a 422, as it is a well-formed identifier;
//! - from a body or a query string (serde, through [`crate::ApiJson`]/[`crate::ApiQuery`]),
//!   a 422 naming the field, like any other field.
//!
//! The OpenAPI schema of each type is built from the same constants
//! ([`MAX_IDENTIFIER_CHARS`], [`PATH_IDENTIFIER`]): use the type with `#[schema(inline)]` /
//! `#[param(inline)]` in a body or query, and as `params(Key)` for a path parameter.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use utoipa::openapi::{
    ObjectBuilder, RefOr, Required, Schema, Type,
    path::{Parameter, ParameterBuilder, ParameterIn},
};

use crate::{
    error::ApiError,
    keys::{self, MAX_IDENTIFIER_CHARS, PATH_IDENTIFIER},
};

/// An identifier type: its field name and its rule.
pub trait Identifier: Sized {
    /// The name of the field or parameter it is read from (`key`, `user_id`, ...).
    const FIELD: &'static str;
    /// Checks `value`; a refusal is a 400 (an identifier read from a path) unless the rule
    /// says otherwise. Read from a body or query, any refusal is a 422 with the same text.
    fn parse(value: String) -> Result<Self, ApiError>;
}

/// The answer of a route whose identifier segment is empty (`/cache/`, `/users/`), which
/// would otherwise be "no such route": a 400 naming the field, as for any refused identifier.
pub async fn refuse_empty<T: Identifier>() -> ApiError {
    match T::parse(String::new()) {
        Err(refusal) => refusal,
        Ok(_) => ApiError::Internal(format!("an empty {} was accepted", T::FIELD)),
    }
}

/// How each identifier is checked.
#[derive(Clone, Copy)]
enum Rule {
    /// 1 to [`MAX_IDENTIFIER_CHARS`] characters ([`keys::identifier`]).
    Bounded,
    /// Also read back through a URL path ([`keys::path_identifier`]).
    Path,
}

impl Rule {
    fn check(self, field: &str, value: &str) -> Result<(), ApiError> {
        match self {
            Self::Bounded => keys::identifier(field, value),
            Self::Path => keys::path_identifier(field, value),
        }
        .map(drop)
        .map_err(|detail| ApiError::bad_request(field, detail))
    }

    /// The JSON Schema of the rule, from the constants the check uses.
    /// `example` is written as the (deprecated) `example` keyword, as the derived schemas
    /// of the other fields are.
    #[allow(deprecated)]
    fn schema(
        self,
        description: Option<&str>,
        example: Option<&str>,
        default: Option<&str>,
    ) -> Schema {
        let chars = Some(MAX_IDENTIFIER_CHARS);
        let builder = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(description)
            .default(default.map(serde_json::Value::from))
            .example(example.map(serde_json::Value::from))
            .min_length(Some(1))
            .max_length(chars);
        match self {
            Self::Bounded => builder,
            Self::Path => builder.pattern(Some(PATH_IDENTIFIER)),
        }
        .build()
        .into()
    }
}

/// Declares an identifier type: a `String` that has passed `rule`, read from `field`.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident: $field:literal, $rule:ident, example = $example:expr,
     description = $description:expr $(, default = $default:literal)? $(, extra = $extra:path)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl Identifier for $name {
            const FIELD: &'static str = $field;
            fn parse(value: String) -> Result<Self, ApiError> {
                Rule::$rule.check($field, &value)?;
                $($extra(&value)?;)?
                Ok(Self(value))
            }
        }

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }

            fn description() -> String {
                $description
            }

            fn default_value() -> Option<&'static str> {
                None$(.or(Some($default)))?
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<$name> for serde_json::Value {
            fn from(id: $name) -> serde_json::Value {
                id.0.into()
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // The text of the refusal only: serde places it at the field's path, which
                // the extractors turn into a 422 naming the field.
                Self::parse(String::deserialize(d)?).map_err(|e| D::Error::custom(e.to_string()))
            }
        }

        impl utoipa::PartialSchema for $name {
            /// Described when an example is given (a body field's schema); a query
            /// parameter's description and example are the parameter's own.
            fn schema() -> RefOr<Schema> {
                let example: Option<&str> = $example;
                let description = example.map(|_| Self::description());
                Rule::$rule
                    .schema(description.as_deref(), example, Self::default_value())
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }

        impl utoipa::IntoParams for $name {
            /// The path parameter `{field}`: `params(Key)` in a handler's `#[utoipa::path]`.
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                vec![path_parameter($field, Self::description(), $example, Rule::$rule)]
            }
        }
    };
}

/// The OpenAPI path parameter of an identifier: described on the parameter, the schema
/// holding the bounds.
fn path_parameter(
    field: &str,
    description: String,
    example: Option<&str>,
    rule: Rule,
) -> Parameter {
    ParameterBuilder::new()
        .name(field)
        .parameter_in(ParameterIn::Path)
        .description(Some(description))
        .required(Required::True)
        .schema(Some(rule.schema(None, None, None)))
        .example(example.map(serde_json::Value::from))
        .build()
}

/// "1 to 512 characters", from [`MAX_IDENTIFIER_CHARS`].
fn length() -> String {
    format!("1 to {MAX_IDENTIFIER_CHARS} characters")
}

/// What the path rule forbids, for descriptions ([`keys::PATH_FORBIDDEN`]).
fn path_rule() -> String {
    let forbidden: Vec<String> = keys::PATH_FORBIDDEN
        .iter()
        .map(|(c, _)| c.to_string())
        .collect();
    format!(
        "{}, none of `{}` or control characters, not `.` or `..` (read back through a URL \
         path on every front door)",
        length(),
        forbidden.join(" ")
    )
}

identifier! {
    /// A cache key, without the prefix.
    Key: "key", Path, example = Some("hello"),
    description = format!("The key, without prefix: {}.", path_rule())
}

identifier! {
    /// A user id: names a profile (read back through `/users/{user_id}`).
    UserId: "user_id", Path, example = Some("user123"),
    description = format!("The user id: {}.", path_rule())
}

identifier! {
    /// What a lock protects.
    Resource: "resource", Path, example = Some("payment_gateway"),
    description = format!("What the lock protects: {}.", path_rule())
}

identifier! {
    /// A counting semaphore's name.
    SemaphoreName: "name", Path, example = Some("db_connections"),
    description = format!("The semaphore's name: {}.", path_rule())
}

identifier! {
    /// A queue name: a path identifier, and none of [`RESERVED_NAMES`] (a 422 naming them).
    QueueName: "name", Path, example = Some("tasks"),
    description = format!(
        "Queue name: {}; not {}, which name routes.",
        path_rule(),
        reserved_list()
    ),
    extra = not_reserved
}

identifier! {
    /// A task's id, chosen by the client.
    TaskId: "id", Bounded, example = Some("task1"),
    description = format!("The task's id: {}.", length())
}

identifier! {
    /// A lock holder's token.
    Token: "token", Bounded, example = Some("0f9d7c3a5e1b4d2c8a6f0e9d7c3a5e1b"),
    description = format!("The holder's token ({}).", length())
}

identifier! {
    /// A claim's receipt.
    Receipt: "receipt", Bounded, example = Some("0f9d7c3a5e1b4d2c8a6f0e9d7c3a5e1b"),
    description = format!("The receipt `claim` gave ({}).", length())
}

identifier! {
    /// A glob matched inside the cache namespace.
    Glob: "pattern", Bounded, example = None,
    description = format!(
        "Glob matched inside the cache namespace (`*`, `user:*`, `h?llo`): {}.",
        length()
    ),
    default = "*"
}

identifier! {
    /// Whom a rate limit counts (any identifier: checks read it from the query or the body).
    RateLimitUser: "user_id", Bounded, example = None,
    description = format!("Who is limited: {}.", length())
}

identifier! {
    /// Whose rate limits `DELETE /rate-limit/{user_id}` resets: read back through the path,
    /// so a caller whose id a front door would change cannot be reset by URL.
    RateLimitCaller: "user_id", Path, example = Some("user123"),
    description = format!(
        "Whose limits to reset: {}; not `check` or `status`, whose paths are routes (such a \
         caller's keys expire with their windows).",
        path_rule()
    )
}

impl Default for Glob {
    /// `*`: every key of the namespace.
    fn default() -> Self {
        Self("*".to_owned())
    }
}

/// The queue `/queue` (no name) works on.
pub const DEFAULT_QUEUE: &str = "tasks";

/// The fixed segments under `/queue/{name}/`: a queue so named could not be told from the
/// route (`/queue/all` would be the queue "all", not the default queue's page), so no queue
/// may be named so.
pub const RESERVED_NAMES: [&str; 6] = ["all", "batch", "claim", "ack", "nack", "dead"];

impl QueueName {
    /// [`DEFAULT_QUEUE`].
    pub fn default_queue() -> Self {
        Self(DEFAULT_QUEUE.to_owned())
    }
}

/// `` `all`, `batch`, `claim` or `ack` ``.
fn reserved_list() -> String {
    let quoted: Vec<String> = RESERVED_NAMES.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn not_reserved(name: &str) -> Result<(), ApiError> {
    if RESERVED_NAMES.contains(&name) {
        return Err(ApiError::validation(
            "name",
            format!(
                "'{name}' is reserved: the words {} name routes under /queue/{{name}}/, so \
                 no queue may be called so",
                RESERVED_NAMES.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_path_refusal_is_a_400_naming_the_field_a_body_one_a_422_with_the_same_text() {
        let e = Key::parse("a/b".to_owned()).unwrap_err();
        assert!(
            matches!(&e, ApiError::BadRequest { field: Some(f), detail } if f == "key" && detail.starts_with("key must not contain '/'")),
            "{e:?}"
        );
        #[derive(Debug, Deserialize)]
        struct Body {
            #[allow(dead_code)]
            key: Key,
        }
        let e = crate::extract::parse_json::<Body>(br#"{"key": "a/b"}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::Validation { field, detail, .. } if field == "key" && detail.starts_with("key must not contain '/'") && !detail.contains(" at line ")),
            "{e:?}"
        );
    }

    #[test]
    fn reserved_queue_names_are_a_422() {
        assert!(matches!(
            QueueName::parse("all".to_owned()),
            Err(ApiError::Validation { .. })
        ));
        assert!(QueueName::parse("tasks".to_owned()).is_ok());
        assert_eq!(
            reserved_list(),
            "`all`, `batch`, `claim`, `ack`, `nack` or `dead`"
        );
    }
}
