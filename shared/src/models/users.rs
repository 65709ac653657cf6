//! Bodies of the `users` function (profiles as Redis hashes).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::UserId;
use crate::validate::Bounds;

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

/// `POST /users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"user_id": "user123", "name": "John Doe", "email": "john@example.com",
    "age": 30, "city": "San Francisco"}))]
#[serde(deny_unknown_fields)]
pub struct CreateProfile {
    // Described by its type.
    #[schema(inline)]
    pub user_id: UserId,
    /// 1 to 200 characters.
    #[schema(
        example = "John Doe",
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\v\f\r ]"
    )]
    pub name: String,
    /// A valid e-mail address.
    #[schema(
        example = "john@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: String,
    /// 0..=150.
    #[serde(default, deserialize_with = "super::integral::opt_i64")]
    #[schema(example = 30, minimum = 0, maximum = 150)]
    pub age: Option<i64>,
    /// Up to 200 characters.
    #[serde(default)]
    #[schema(
        example = "San Francisco",
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t\n\v\f\r ]"
    )]
    pub city: Option<String>,
    /// Seconds to live, 1..=31536000 (extension; default `DEFAULT_TTL`).
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(minimum = 1, maximum = 31_536_000)]
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
    #[param(
        example = "name,email",
        pattern = r"^$|^(user_id|name|email|age|city|created_at|updated_at)(,(user_id|name|email|age|city|created_at|updated_at))*$"
    )]
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
    /// New name (`null` is refused: a profile always has one).
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200, pattern = r"[^\t\n\v\f\r ]")]
    pub name: Option<Option<String>>,
    /// New e-mail address (`null` is refused: a profile always has one).
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = String, required = false, max_length = 254, pattern = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")]
    pub email: Option<Option<String>>,
    /// New age, or `null` to remove it.
    #[serde(default, deserialize_with = "super::integral::opt_opt_i64")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 150)]
    pub age: Option<Option<i64>>,
    /// New city, or `null` to remove it.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>, example = "Oslo", min_length = 1, max_length = 200, pattern = r"[^\t\n\v\f\r ]")]
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
