//! The `users` function: user profiles as Redis hashes.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /users` | `MULTI DEL + HSET + EXPIRE EXEC`: one round trip, replaces any old profile |
//! | `GET /users/{user_id}[?fields=a,b]` | `HGETALL` (or `HMGET`) + `TTL` + lookup counter, pipelined |
//! | `PATCH /users/{user_id}` | `user_update.lua`: HSET/HDEL only if it exists; TTL kept |
//! | `DELETE /users/{user_id}` | `UNLINK` |
//!
//! Hits and misses are counted in Redis (`{prefix}stats:profiles`) so `/stats` reports the
//! hit rate across every instance. Reads the environment through `shared::Config`.

use axum::{Json, Router, extract::State, http::StatusCode, response::Response, routing::get};
use redis::AsyncCommands;
use serde_json::{Map, Value};
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        TTL_SECS,
        ids::{UserId, refuse_empty},
        now_rfc3339, ttl_from_redis,
        users::{
            AGE, CreateProfile, FIELDS, MAX_TEXT_CHARS, ProfileCreated, ProfileDeleted,
            ProfileFound, ProfileQuery, ProfileUpdated, UpdateProfile,
        },
    },
    scripts, validate,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// The users routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(create_profile))
        .routes(routes!(get_profile, update_profile, delete_profile))
        .route(
            "/users/",
            get(refuse_empty::<UserId>)
                .patch(refuse_empty::<UserId>)
                .delete(refuse_empty::<UserId>),
        );
    shared::docs::tag_operations(api.get_openapi_mut(), "users");
    api
}

/// The users routes, with their state.
pub fn router(state: AppState) -> Router {
    // A lookup counts a hit or a miss: HEAD must not run it, and no cache may keep it.
    shared::http::guarded(api().split_for_parts(), &["/users/{user_id}"], state)
}

/// `POST /users`: stores (or replaces) a profile with a TTL.
#[utoipa::path(
    post,
    path = "/users",
    summary = "Cache a user profile (hash)",
    description = "`MULTI DEL HSET EXPIRE EXEC`: one round trip; replaces any older profile.",
    request_body = CreateProfile,
    responses(
        (status = 201, description = "Stored", body = ProfileCreated)
    )
)]
async fn create_profile(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiJson(body): ApiJson<CreateProfile>,
) -> Result<Response, ApiError> {
    validate::text("name", &body.name, MAX_TEXT_CHARS)?;
    validate::email("email", &body.email)?;
    if let Some(age) = body.age {
        AGE.check("age", age)?;
    }
    if let Some(city) = &body.city {
        validate::text("city", city, MAX_TEXT_CHARS)?;
    }
    let ttl = TTL_SECS.check("ttl", body.ttl.unwrap_or(state.config.default_ttl))?;

    let mut fields = vec![
        ("user_id", body.user_id.to_string()),
        ("name", body.name),
        ("email", body.email),
        ("created_at", now_rfc3339()),
    ];
    if let Some(age) = body.age {
        fields.push(("age", age.to_string()));
    }
    if let Some(city) = body.city {
        fields.push(("city", city));
    }
    let key = state.keys.user(&body.user_id);
    let stored: Outcome<()> = if idempotency.is_keyed() {
        idempotency
            .run(&state, &scripts::USER_CREATE, &key, |s| {
                s.key(&key).arg(ttl);
                for (field, value) in &fields {
                    s.arg(*field).arg(value);
                }
            })
            .await?
    } else {
        let mut redis = state.redis.clone();
        // MULTI: a reader never sees the old profile mixed with the new, nor one without a TTL.
        Outcome::fresh(
            redis::pipe()
                .atomic()
                .del(&key)
                .ignore()
                .hset_multiple(&key, &fields)
                .ignore()
                .expire(&key, ttl as i64)
                .ignore()
                .query_async(&mut redis)
                .await?,
        )
    };
    Ok(stored.respond((
        StatusCode::CREATED,
        Json(ProfileCreated {
            message: "User profile cached successfully".to_owned(),
            user_id: body.user_id.into(),
            cache_key: key,
            ttl_seconds: ttl,
        }),
    )))
}

/// `GET /users/{user_id}`: the profile (or `?fields=`) with `cache_hit` and TTL.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    summary = "Get a user profile (whole or some fields)",
    description = "`HGETALL` (or `HMGET` with `fields`) + `TTL`, pipelined. A miss is a 404 with `cache_hit: false`.",
    params(UserId, ProfileQuery),
    responses(
        (status = 200, description = "Cache hit", body = ProfileFound),
        (status = 404, description = "Cache miss: the problem carries `cache_hit: false`"),
        (status = 409, description = "The profile's key holds another Redis type (another client's data): `DELETE` removes it")
    )
)]
async fn get_profile(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<UserId>,
    ApiQuery(query): ApiQuery<ProfileQuery>,
) -> Result<Json<ProfileFound>, ApiError> {
    let wanted = query
        .fields
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(parse_fields)
        .transpose()?;
    let key = state.keys.user(&user_id);
    let stats = state.keys.profile_stats();
    let mut redis = state.redis.clone();

    let mut pipe = redis::pipe();
    match &wanted {
        Some(fields) => pipe.hmget(&key, fields),
        None => pipe.hgetall(&key),
    };
    pipe.ttl(&key).hincr(&stats, "lookups", 1).ignore();
    let (values, ttl): (Value, i64) = if let Some(fields) = &wanted {
        let read = pipe.query_async(&mut redis).await;
        let (values, ttl): (Vec<Option<String>>, i64) = match read {
            Ok(read) => read,
            Err(e) => return Err(read_failed(&mut redis, &key, &user_id, e).await),
        };
        let map = fields
            .iter()
            .zip(values)
            .filter_map(|(f, v)| v.map(|v| ((*f).to_owned(), v)));
        (Value::Object(typed(map)), ttl)
    } else {
        let read = pipe.query_async(&mut redis).await;
        let (pairs, ttl): (Vec<(String, String)>, i64) = match read {
            Ok(read) => read,
            Err(e) => return Err(read_failed(&mut redis, &key, &user_id, e).await),
        };
        (Value::Object(typed(pairs)), ttl)
    };

    // TTL -2: no such key. (An HMGET of absent fields is empty too, but the key exists.)
    if ttl == -2 {
        let () = redis.hincr(&stats, "misses", 1).await?;
        return Err(ApiError::not_found(format!(
            "no cached profile for user '{user_id}' (never cached, deleted or expired)"
        ))
        .with("cache_hit", false)
        .with("user_id", user_id));
    }
    let Value::Object(profile) = values else {
        return Err(ApiError::Internal("profile is not an object".into()));
    };
    Ok(Json(ProfileFound {
        user_id: user_id.into(),
        profile,
        cache_hit: true,
        ttl_seconds: ttl_from_redis(ttl),
    }))
}

/// A profile read that Redis refused. `WRONGTYPE` because the profile's key holds another
/// type (another client's data) is a 409 naming it, as the cache does; anything else
/// (the lookup counters' key broken too, Redis away) is what the error says.
async fn read_failed(
    redis: &mut shared::state::Redis,
    key: &str,
    user_id: &str,
    e: redis::RedisError,
) -> ApiError {
    if shared::error::server_code(&e).as_deref() == Some("WRONGTYPE") {
        let kind: redis::RedisResult<String> = redis::cmd("TYPE").arg(key).query_async(redis).await;
        if let Ok(kind) = kind
            && kind != "hash"
        {
            return ApiError::conflict(format!(
                "the key of user '{user_id}' holds a Redis {kind}, not a profile (another \
                 client's data?); DELETE /users/{user_id} removes it"
            ));
        }
    }
    e.into()
}

/// `PATCH /users/{user_id}`: changes some fields, keeps the TTL.
#[utoipa::path(
    patch,
    path = "/users/{user_id}",
    summary = "Update some fields, keeping the TTL",
    description = "Lua: HSET/HDEL only when the profile exists. `null` removes `age` or `city`.",
    params(UserId),
    request_body = UpdateProfile,
    responses(
        (status = 200, description = "Updated profile", body = ProfileUpdated),
        (status = 404, description = "Not found")
    )
)]
async fn update_profile(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UpdateProfile>,
) -> Result<Response, ApiError> {
    let mut set: Vec<(&str, String)> = Vec::new();
    let mut remove: Vec<&str> = Vec::new();
    let required = |field: &str| {
        ApiError::validation(
            field,
            format!("{field} cannot be removed; every profile has one"),
        )
    };
    match body.name {
        Some(Some(name)) => set.push((
            "name",
            validate::text("name", &name, MAX_TEXT_CHARS)?.to_owned(),
        )),
        Some(None) => return Err(required("name")),
        None => {}
    }
    match body.email {
        Some(Some(email)) => set.push(("email", validate::email("email", &email)?.to_owned())),
        Some(None) => return Err(required("email")),
        None => {}
    }
    match body.age {
        Some(Some(age)) => set.push(("age", AGE.check("age", age)?.to_string())),
        Some(None) => remove.push("age"),
        None => {}
    }
    match body.city {
        Some(Some(city)) => {
            validate::text("city", &city, MAX_TEXT_CHARS)?;
            set.push(("city", city));
        }
        Some(None) => remove.push("city"),
        None => {}
    }
    if set.is_empty() && remove.is_empty() {
        return Err(ApiError::validation(
            "body",
            "nothing to update: give at least one of name, email, age, city",
        ));
    }
    set.push(("updated_at", now_rfc3339()));

    let key = state.keys.user(&user_id);
    let updated: Outcome<Option<Updated>> = idempotency
        .run(&state, &scripts::USER_UPDATE, &key, |s| {
            s.key(&key).arg(set.len());
            for (field, value) in &set {
                s.arg(*field).arg(value);
            }
            for field in &remove {
                s.arg(*field);
            }
        })
        .await?;
    let Some((pttl, pairs)) = &updated.value else {
        return Err(ApiError::not_found(format!(
            "no cached profile for user '{user_id}' to update"
        )));
    };
    Ok(updated.respond(Json(ProfileUpdated {
        message: "User profile updated".to_owned(),
        user_id: user_id.into(),
        profile: typed(pairs.clone()),
        ttl_seconds: ttl_from_redis(*pttl).map(|ms| ms.div_ceil(1000)),
    })))
}

/// What `user_update.lua` returns for an existing profile: its PTTL and its fields.
type Updated = (i64, Vec<(String, String)>);

/// `DELETE /users/{user_id}`.
#[utoipa::path(
    delete,
    path = "/users/{user_id}",
    summary = "Delete a user profile",
    params(UserId),
    responses(
        (status = 200, description = "Deleted", body = ProfileDeleted),
        (status = 404, description = "Not found")
    )
)]
async fn delete_profile(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<Response, ApiError> {
    let removed = idempotency
        .unlink(&state, &state.keys.user(&user_id))
        .await?;
    if removed.value == 0 {
        return Ok(removed.respond(ApiError::not_found(format!(
            "no cached profile for user '{user_id}'"
        ))));
    }
    Ok(removed.respond(Json(ProfileDeleted {
        message: format!("User profile '{user_id}' deleted"),
        user_id: user_id.into(),
    })))
}

/// `?fields=name,email` → the field names, each one a profile field, comma-separated with
/// nothing else (the exact rule of the OpenAPI `pattern`).
fn parse_fields(raw: &str) -> Result<Vec<&'static str>, ApiError> {
    let mut out = Vec::new();
    for name in raw.split(',') {
        let known = FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
            ApiError::validation(
                "fields",
                format!(
                    "unknown profile field {name:?}; give a comma-separated list of: {}",
                    FIELDS.join(", ")
                ),
            )
        })?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    Ok(out)
}

/// Hash fields as JSON, in [`FIELDS`] order: `age` as a number, the rest as strings.
fn typed(pairs: impl IntoIterator<Item = (String, String)>) -> Map<String, Value> {
    let mut pairs: Vec<(String, String)> = pairs.into_iter().collect();
    pairs.sort_by_key(|(f, _)| FIELDS.iter().position(|k| k == f).unwrap_or(FIELDS.len()));
    pairs
        .into_iter()
        .map(|(field, value)| {
            let value = match (field.as_str(), value.parse::<i64>()) {
                ("age", Ok(n)) => Value::from(n),
                _ => Value::String(value),
            };
            (field, value)
        })
        .collect()
}
