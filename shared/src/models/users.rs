//! Bodies of the `users` function (profiles as Redis hashes).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use utoipa::openapi::{
    RefOr,
    schema::{ObjectBuilder, Schema},
};

use super::ids::UserId;
use crate::validate::{self, Bounds};

/// Fields a profile can hold, in the order they are shown; `?fields=` takes a
/// comma-separated list of them ([`fields_pattern`]).
pub const FIELDS: [&str; 7] = [
    "user_id",
    "name",
    "email",
    "age",
    "city",
    "created_at",
    "updated_at",
];

/// The JSON Schema `pattern` of `?fields=`: empty, or [`FIELDS`] names separated by commas.
pub fn fields_pattern() -> String {
    let name = FIELDS.join("|");
    format!("^$|^({name})(,({name}))*$")
}

/// Longest name or city, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A profile's `age`.
pub const AGE: Bounds<i64> = Bounds::new(0, 150);

/// The schema of `?fields=` ([`fields_pattern`]).
pub struct FieldsParam;

impl utoipa::PartialSchema for FieldsParam {
    fn schema() -> RefOr<Schema> {
        validate::string_schema(false)
            .pattern(Some(fields_pattern()))
            .build()
            .into()
    }
}

impl utoipa::ToSchema for FieldsParam {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("FieldsParam")
    }
}

// The schemas of the profile's fields, from the rules the handler checks.
#[allow(deprecated)] // the derived schemas write `example` too
fn name_schema() -> ObjectBuilder {
    validate::text_schema(MAX_TEXT_CHARS, false)
        .description(Some(format!("1 to {MAX_TEXT_CHARS} characters.")))
        .example(Some("John Doe".into()))
}

#[allow(deprecated)]
fn email_schema() -> ObjectBuilder {
    validate::email_schema()
        .description(Some("A valid e-mail address."))
        .example(Some("john@example.com".into()))
}

#[allow(deprecated)]
fn age_schema() -> ObjectBuilder {
    AGE.nullable_schema()
        .description(Some(format!("{AGE}.")))
        .example(Some(30.into()))
}

#[allow(deprecated)]
fn city_schema() -> ObjectBuilder {
    validate::text_schema(MAX_TEXT_CHARS, true)
        .description(Some(format!("Up to {MAX_TEXT_CHARS} characters.")))
        .example(Some("San Francisco".into()))
}

fn ttl_schema() -> ObjectBuilder {
    super::cache::body_ttl_schema(" (extension; default `DEFAULT_TTL`)")
}

fn new_name_schema() -> ObjectBuilder {
    validate::text_schema(MAX_TEXT_CHARS, false).description(Some(
        "New name (`null` is refused: a profile always has one).",
    ))
}

fn new_email_schema() -> ObjectBuilder {
    validate::email_schema().description(Some(
        "New e-mail address (`null` is refused: a profile always has one).",
    ))
}

fn new_age_schema() -> ObjectBuilder {
    AGE.nullable_schema()
        .description(Some("New age, or `null` to remove it."))
}

#[allow(deprecated)]
fn new_city_schema() -> ObjectBuilder {
    validate::text_schema(MAX_TEXT_CHARS, true)
        .description(Some("New city, or `null` to remove it."))
        .example(Some("Oslo".into()))
}

/// `POST /users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"user_id": "user123", "name": "John Doe", "email": "john@example.com",
    "age": 30, "city": "San Francisco"}))]
#[serde(deny_unknown_fields)]
pub struct CreateProfile {
    // Described by its type.
    #[schema(inline)]
    pub user_id: UserId,
    // Each field is described by its schema function, from the rule it states.
    #[schema(schema_with = name_schema)]
    pub name: String,
    #[schema(schema_with = email_schema)]
    pub email: String,
    #[serde(default, deserialize_with = "super::integral::opt_i64")]
    #[schema(schema_with = age_schema)]
    pub age: Option<i64>,
    #[serde(default)]
    #[schema(schema_with = city_schema)]
    pub city: Option<String>,
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = ttl_schema)]
    pub ttl: Option<u64>,
}

/// `POST /users` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileCreated {
    /// `User profile cached successfully`.
    pub message: String,
    /// The user id.
    pub user_id: String,
    /// The Redis key holding the profile hash.
    pub cache_key: String,
    /// The TTL the profile got.
    pub ttl_seconds: u64,
}

/// `GET /users/{user_id}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProfileQuery {
    /// Comma-separated field names to return (HMGET) instead of the whole profile; empty
    /// means all of them.
    #[serde(default)]
    #[param(inline, value_type = FieldsParam, example = "name,email")]
    pub fields: Option<String>,
}

/// `GET /users/{user_id}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileFound {
    /// The user id.
    pub user_id: String,
    /// The profile (or the asked fields): `age` as a number, the rest as strings.
    pub profile: Map<String, Value>,
    /// Always `true` here; a miss is a 404 problem with `cache_hit: false`.
    pub cache_hit: bool,
    /// Seconds left to live.
    pub ttl_seconds: Option<u64>,
}

/// `PATCH /users/{user_id}` body: the fields to change; `null` removes an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(min_properties = 1, example = json!({"city": "Oslo", "age": null}))]
#[serde(deny_unknown_fields)]
pub struct UpdateProfile {
    // Each field is described by its schema function, from the rule it states.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(schema_with = new_name_schema)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(schema_with = new_email_schema)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "super::integral::opt_opt_i64")]
    #[schema(schema_with = new_age_schema)]
    pub age: Option<Option<i64>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(schema_with = new_city_schema)]
    pub city: Option<Option<String>>,
}

/// `PATCH /users/{user_id}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileUpdated {
    /// Human sentence.
    pub message: String,
    /// The user id.
    pub user_id: String,
    /// The whole profile after the update.
    pub profile: Map<String, Value>,
    /// Seconds left to live (unchanged by the update).
    pub ttl_seconds: Option<u64>,
}

/// `DELETE /users/{user_id}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileDeleted {
    /// Human sentence.
    pub message: String,
    /// The user id.
    pub user_id: String,
}
