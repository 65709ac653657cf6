//! The `cache` function: JSON values under a key, with a TTL.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /cache` | `SET key value EX ttl` |
//! | `GET /cache/{key}` | `GET` + `TTL`, pipelined: one round trip |
//! | `DELETE /cache/{key}` | `UNLINK` |
//! | `GET /cache?pattern=&count=&cursor=` | `SCAN ... MATCH` inside the namespace, then `TTL`s pipelined |
//!
//! Values are stored as the JSON text received (validated, never re-encoded), so any JSON
//! value (object, string, number, `null`) comes back exactly as it was sent: a 30-digit
//! integer, `1E2` and `-0` included. Reads the environment through `shared::Config`;
//! run it locally with `cargo run -p local-runner`, on Lambda as the `cache` binary.

use axum::{Json, Router, extract::State, http::StatusCode, response::Response, routing::get};
use redis::AsyncCommands;
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        CURSOR, Entry, EntryDeleted, EntryStored, KeyPage, KeyTtl, ListQuery, PAGE, PutEntry,
        TTL_SECS,
        ids::{Key, refuse_empty},
        raw_json_or_string, ttl_from_redis,
    },
    scripts,
    state::Scan,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Most SCAN calls one listing request makes before it returns what it has (with a cursor
/// to continue): bounds the work per request however sparse the matches are.
const MAX_SCANS_PER_PAGE: usize = 16;

/// Where a listing cursor keeps how many keys of one SCAN unit were already handed out (see
/// [`scan_page`]): bits 52..=62. Below them is the SCAN cursor itself (a cluster's included:
/// it is under 2^52 for any keyspace that fits in memory).
const SKIP_SHIFT: u32 = 52;
const SCAN_CURSOR_MASK: u64 = (1 << SKIP_SHIFT) - 1;

/// The cache routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(put_entry, list_entries))
        .routes(routes!(get_entry, delete_entry))
        // `/cache/` would otherwise be "no such route"; the contract (README, OpenAPI) makes an empty key a 400.
        .route(
            "/cache/",
            get(refuse_empty::<Key>).delete(refuse_empty::<Key>),
        );
    shared::docs::tag_operations(api.get_openapi_mut(), "cache");
    api
}

/// The cache routes, with their state.
pub fn router(state: AppState) -> Router {
    // A query parameter the route does not declare is a 422, on every method.
    shared::http::guarded(api().split_for_parts(), &[], state)
}

/// `POST /cache`: stores a value with a TTL.
#[utoipa::path(
    post,
    path = "/cache",
    summary = "Set a cache value with a TTL",
    description = "`SET key value EX ttl`. `value` is any JSON value and comes back exactly as sent.",
    request_body = PutEntry,
    responses(
        (status = 201, description = "Stored", body = EntryStored)
    )
)]
async fn put_entry(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiJson(body): ApiJson<PutEntry>,
) -> Result<Response, ApiError> {
    let ttl = TTL_SECS.check("ttl", body.ttl.unwrap_or(state.config.default_ttl))?;
    // The value's own text, as received: re-encoding it would turn `1E2` into `100.0`.
    let text = body.value.get();
    let full = state.keys.cache(&body.key);
    let stored: Outcome<()> = if idempotency.is_keyed() {
        idempotency
            .run(&state, &scripts::CACHE_SET, &full, |s| {
                s.key(&full).arg(text).arg(ttl);
            })
            .await?
    } else {
        let mut redis = state.redis.clone();
        Outcome::fresh(redis.set_ex(&full, text, ttl).await?)
    };
    Ok(stored.respond((
        StatusCode::CREATED,
        Json(EntryStored {
            message: format!("Value cached under '{}' for {ttl} seconds", body.key),
            key: body.key.into(),
            ttl_seconds: ttl,
        }),
    )))
}

/// `GET /cache/{key}`: the value and its remaining TTL.
#[utoipa::path(
    get,
    path = "/cache/{key}",
    summary = "Get a cache value",
    description = "`GET` + `TTL`, pipelined in one round trip.",
    params(Key),
    responses(
        (status = 200, description = "The value", body = Entry),
        (status = 404, description = "Not found")
    )
)]
async fn get_entry(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<Key>,
) -> Result<Json<Entry>, ApiError> {
    let full = state.keys.cache(&key);
    let mut redis = state.redis.clone();
    let (text, ttl): (Option<String>, i64) = redis::pipe()
        .get(&full)
        .ttl(&full)
        .query_async(&mut redis)
        .await?;
    let Some(text) = text else {
        return Err(ApiError::not_found(format!(
            "key '{key}' is not in the cache (never set, deleted or expired)"
        )));
    };
    Ok(Json(Entry {
        key: key.into(),
        value: raw_json_or_string(&text),
        ttl_seconds: ttl_from_redis(ttl),
    }))
}

/// `DELETE /cache/{key}`.
#[utoipa::path(
    delete,
    path = "/cache/{key}",
    summary = "Delete a cache value",
    params(Key),
    responses(
        (status = 200, description = "Deleted", body = EntryDeleted),
        (status = 404, description = "Not found")
    )
)]
async fn delete_entry(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(key): ApiPath<Key>,
) -> Result<Response, ApiError> {
    let removed = idempotency.unlink(&state, &state.keys.cache(&key)).await?;
    if removed.value == 0 {
        return Ok(removed.respond(ApiError::not_found(format!(
            "key '{key}' is not in the cache"
        ))));
    }
    Ok(removed.respond(Json(EntryDeleted {
        message: format!("Key '{key}' deleted"),
        key: key.into(),
    })))
}

/// `GET /cache`: one page of keys matching `pattern`, by SCAN (never KEYS).
#[utoipa::path(
    get,
    path = "/cache",
    summary = "List keys by pattern (SCAN, paged by cursor)",
    description = "Glob `pattern` matched inside the cache namespace only. Pass the answer's \
        `cursor` back for the next page until it is 0; a page may be short (even empty) with a \
        non-zero cursor when matches are sparse.",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of keys", body = KeyPage)
    )
)]
async fn list_entries(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<KeyPage>, ApiError> {
    PAGE.check("count", query.count)?;
    CURSOR.check("cursor", query.cursor)?;
    let pattern = state.keys.cache_pattern(&query.pattern);
    let mut redis = state.redis.clone();

    let (found, cursor) = scan_page(&redis, &pattern, query.cursor, query.count as usize)
        .await
        .map(|(keys, cursor)| {
            let keys = keys
                .iter()
                .map(|k| String::from_utf8_lossy(k))
                .filter_map(|k| state.keys.strip_cache(&k).map(str::to_owned))
                .collect::<Vec<_>>();
            (keys, cursor)
        })?;

    let mut ttls = redis::pipe();
    for key in &found {
        ttls.ttl(state.keys.cache(key));
    }
    let ttls: Vec<i64> = if found.is_empty() {
        Vec::new()
    } else {
        ttls.query_async(&mut redis).await?
    };
    let keys: Vec<KeyTtl> = found
        .into_iter()
        .zip(ttls)
        // A key that expired between SCAN and TTL (-2) is gone: leave it out.
        .filter(|(_, ttl)| *ttl != -2)
        .map(|(key, ttl)| KeyTtl {
            key,
            ttl_seconds: ttl_from_redis(ttl),
        })
        .collect();
    Ok(Json(KeyPage {
        pattern: query.pattern.into(),
        count: keys.len(),
        keys,
        cursor,
    }))
}

/// One page of at most `count` keys matching `pattern`, from `cursor`, and the cursor to
/// continue with (0 at the end).
///
/// SCAN's COUNT is a hint: a step returns whole hash buckets, so it may hand back more keys
/// than asked. A page never holds more than `count`: each step asks for what is still
/// missing; a step that brings more is replaced by a step of one bucket (`COUNT 1`), and a
/// bucket that does not fit either is left whole to the next page — so a page ends on a
/// real SCAN cursor and keeps SCAN's guarantee. Only when a page's very first bucket holds
/// more keys than `count` (a `count` of 1 or 2) is a bucket split: the page takes its first
/// keys in byte order, and the cursor says how many, in the bits above [`SKIP_SHIFT`]; the
/// next page reads that bucket again and skips them. Such a split can repeat or miss a key
/// of that one bucket if the bucket changes in between (a write to it, or Redis finishing a
/// rehash of its table).
async fn scan_page(
    redis: &shared::state::Redis,
    pattern: &str,
    cursor: u64,
    count: usize,
) -> Result<(Vec<Vec<u8>>, u64), ApiError> {
    let mut scan = Scan::new(redis, pattern, cursor & SCAN_CURSOR_MASK).at_most(MAX_SCANS_PER_PAGE);
    let mut skip = (cursor >> SKIP_SHIFT) as usize;
    let mut found: Vec<Vec<u8>> = Vec::new();
    loop {
        let missing = count - found.len();
        let Some((mut next, mut batch)) =
            scan.look(if skip > 0 { 1 } else { missing as u64 }).await?
        else {
            break;
        };
        if skip == 0 && batch.len() > missing {
            (next, batch) = scan.look(1).await?.unwrap_or((next, batch));
        }
        if skip == 0 && batch.len() > missing && !found.is_empty() {
            // This bucket goes to the next page, whole: the page ends on a real SCAN cursor.
            return Ok((found, scan.cursor()));
        }
        if skip > 0 || batch.len() > missing {
            batch.sort_unstable();
            let rest = batch.split_off(skip.min(batch.len()));
            if rest.len() > missing {
                let taken = skip + missing;
                found.extend(rest.into_iter().take(missing));
                return Ok((found, scan.cursor() | ((taken as u64) << SKIP_SHIFT)));
            }
            batch = rest;
            skip = 0;
        }
        found.extend(batch);
        scan.move_to(next);
        if found.len() >= count {
            break;
        }
    }
    Ok((found, scan.cursor()))
}
