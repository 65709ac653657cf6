//! The `cache` function: JSON values under a key, with a TTL, an entity tag and optionally
//! the time they took to compute.
//!
//! | route | Redis |
//! |---|---|
//! | `POST /cache` | `MULTI DEL HSET EXPIRE EXEC`: the entry as one hash (value, ETag, compute time) with its TTL; `cache_put.lua` for a compare-and-set under `If-Match` / `If-None-Match` or with an `Idempotency-Key` |
//! | `GET /cache/{key}` | `HMGET` + `PTTL`, pipelined: one round trip; 304 for `If-None-Match`; XFetch's `refresh_recommended` |
//! | `DELETE /cache/{key}` | `UNLINK` |
//! | `GET /cache?pattern=&count=&cursor=` | `SCAN ... MATCH` inside the namespace, then `TTL`s pipelined |
//!
//! Values are stored as the JSON text received (validated, never re-encoded), so any JSON
//! value (object, string, number, `null`) comes back exactly as it was sent: a 30-digit
//! integer, `1E2` and `-0` included. Reads the environment through `shared::Config`;
//! run it locally with `cargo run -p local-runner`, on Lambda as the `cache` binary.

mod conditional;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use conditional::{Preconditions, etag_header};
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        COMPUTE_MS, CURSOR, Entry, EntryDeleted, EntryStored, GetQuery, KeyPage, KeyTtl, ListQuery,
        PAGE, PutEntry, ReadPreconditions, TTL_SECS, WritePreconditions, XFETCH_BETA, counted,
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

/// `POST /cache`: stores a value with a TTL; conditionally under `If-Match` / `If-None-Match`.
#[utoipa::path(
    post,
    path = "/cache",
    summary = "Set a cache value with a TTL (conditionally with If-Match / If-None-Match)",
    description = "One atomic step (a `MULTI`; a script under a precondition or an `Idempotency-Key`) stores the entry (its value, its ETag and `compute_ms`) with its TTL. \
        `value` is any JSON value and comes back exactly as sent. `If-Match: \"<etag>\"` makes the \
        write a compare-and-set: it is applied only if the entry still has that ETag (412 \
        otherwise, nothing changed); `If-None-Match: *` creates only (412 if the key exists).",
    params(WritePreconditions),
    request_body = PutEntry,
    responses(
        (status = 201, description = "Stored", body = EntryStored, headers(
            ("ETag" = String, description = "The new entry's entity tag (SHA-1 of the value's text, quoted)"))),
        (status = 412, description = "A precondition failed: nothing was written; the problem names the header and carries `current_etag` (null when the key does not exist or holds data of another type)")
    )
)]
async fn put_entry(
    State(state): State<AppState>,
    idempotency: Idempotency,
    pre: Preconditions,
    ApiJson(body): ApiJson<PutEntry>,
) -> Result<Response, ApiError> {
    let ttl = TTL_SECS.check("ttl", body.ttl.unwrap_or(state.config.default_ttl))?;
    let compute_ms = body
        .compute_ms
        .map(|ms| COMPUTE_MS.check("compute_ms", ms))
        .transpose()?;
    // The value's own text, as received: re-encoding it would turn `1E2` into `100.0`.
    let text = body.value.get();
    let full = state.keys.cache(&body.key);
    let stored: Outcome<(u8, Option<String>, String)> = if pre.any() || idempotency.is_keyed() {
        let conditions = pre.script_args();
        idempotency
            .run(&state, &scripts::CACHE_PUT, &full, |s| {
                s.key(&full)
                    .arg(&conditions)
                    .arg(text)
                    .arg(ttl)
                    .arg(compute_ms.map(|ms| ms.to_string()).unwrap_or_default());
            })
            .await?
    } else {
        let etag = store(&state, &full, text, ttl, compute_ms).await?;
        Outcome::fresh((1, Some(etag), String::new()))
    };
    let (applied, etag, failed) = &stored.value;
    if *applied != 1 && failed == "If-Match" && pre.only_weak_match(etag.as_deref()) {
        return Err(weak_if_match(
            &body.key,
            etag.as_deref(),
            "nothing was written: ",
            "write",
        ));
    }
    if *applied != 1 {
        return Err(precondition_failed(
            failed,
            &body.key,
            etag.as_deref(),
            "nothing was written",
        ));
    }
    let mut response = stored.respond((
        StatusCode::CREATED,
        Json(EntryStored {
            message: format!(
                "Value cached under '{}' for {}",
                body.key,
                counted(ttl, "second", "seconds")
            ),
            key: body.key.into(),
            ttl_seconds: ttl,
        }),
    ));
    if let Some(etag) = etag.as_deref().and_then(etag_header) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// What `cache_condition.lua` reports as the current tag of a key of another type.
const FOREIGN_KEY_TAG: &str = "\0";

/// The 412 of a write whose `header` condition failed, with the entry's current tag;
/// `nothing` says what did not happen ("nothing was written").
fn precondition_failed(header: &str, key: &str, current: Option<&str>, nothing: &str) -> ApiError {
    // The scripts' stand-in tag for a key of another type (a list, a set: another client's
    // data): it exists, and no entity tag names it, so none is reported.
    if current == Some(FOREIGN_KEY_TAG) {
        return ApiError::precondition_failed(
            header,
            format!("{header}: {}; {nothing}", not_an_entry(key)),
        )
        .with("current_etag", None::<&str>);
    }
    let detail = match (header, current) {
        ("If-None-Match", Some(tag)) => {
            format!("If-None-Match: key '{key}' exists (ETag \"{tag}\"); {nothing}")
        }
        (_, Some(tag)) => format!(
            "If-Match: the entry under '{key}' changed since it was read (its ETag is now \
             \"{tag}\"); {nothing}: read it again, then retry"
        ),
        (_, None) => format!("If-Match: key '{key}' does not exist; {nothing}"),
    };
    ApiError::precondition_failed(header, detail).with("current_etag", current)
}

/// The 412 of an `If-Match` that named the current tag, but weak (`W/"..."`): a weak tag
/// never matches `If-Match` (RFC 9110's strong comparison), which the usual "changed since it
/// was read" would hide. `nothing` and `verb` say what did not happen ("nothing was
/// written: ", or empty for a read; "write").
fn weak_if_match(key: &str, current: Option<&str>, nothing: &str, verb: &str) -> ApiError {
    ApiError::precondition_failed(
        "If-Match",
        format!(
            "If-Match: a weak entity tag (W/\"...\") never matches If-Match; {nothing}send \
             the entry's tag without W/ to {verb} '{key}'"
        ),
    )
    .with("current_etag", current)
}

/// Why a key under the cache's prefix cannot be used as an entry: it holds data the API did
/// not write (another Redis type, or a hash without the entry's fields).
fn not_an_entry(key: &str) -> String {
    format!(
        "key '{key}' holds data that is not a cache entry (another Redis type, or a hash \
         without the entry's fields: another client's?); DELETE /cache/{key} removes it"
    )
}

/// An entry as read: its text, entity tag, compute time and remaining life (PTTL, ms).
struct Stored {
    text: String,
    etag: String,
    compute_ms: Option<u64>,
    pttl: i64,
}

/// An entry's hash fields as `HMGET k v e c` reads them (value, tag, compute time).
type Fields = (Option<Vec<u8>>, Option<String>, Option<u64>);

/// Reads an entry and its PTTL in one round trip; `None` when there is none. A key that is
/// not a hash (an entry an earlier version stored as a plain string, another client's) is
/// read again in one transaction that looks at its type and reads it both ways, so a key
/// that turns from one to the other meanwhile (a rolling upgrade) is still read; a string's
/// bytes are taken as UTF-8 even when they are not.
async fn read_entry(state: &AppState, key: &str, full: &str) -> Result<Option<Stored>, ApiError> {
    let mut redis = state.redis.clone();
    let hash: redis::RedisResult<(Fields, i64)> = redis::pipe()
        .cmd("HMGET")
        .arg(full)
        .arg(&["v", "e", "c"])
        .pttl(full)
        .query_async(&mut redis)
        .await;
    let ((text, etag, compute_ms), pttl) = match hash {
        Err(e) if wrong_type(&e) => read_any_type(&mut redis, key, full).await?,
        other => other?,
    };
    let Some(text) = text else {
        // No value: no key (PTTL -2), or a hash without the entry's fields.
        if pttl == -2 {
            return Ok(None);
        }
        return Err(ApiError::conflict(not_an_entry(key)));
    };
    Ok(Some(Stored {
        etag: etag.unwrap_or_else(|| sha1_smol::Sha1::from(&text).digest().to_string()),
        text: String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        compute_ms,
        pttl,
    }))
}

/// Stores an entry with no precondition and no `Idempotency-Key`: nothing to decide inside
/// Redis, so one `MULTI` (`DEL`, `HSET`, `EXPIRE`) writes what `cache_put.lua` would, with the
/// ETag (the SHA-1 of the text, as the script's `redis.sha1hex`) computed here. Plain
/// commands cost Redis about half of a script run (`bench/run.sh`, `POST /cache`). `DEL`
/// first: the key may hold an entry of an earlier version (a string) or a stale `c`. Out of
/// memory, Redis refuses the whole `EXEC` (it holds a write), so nothing is half-written.
/// Returns the new ETag.
async fn store(
    state: &AppState,
    full: &str,
    text: &str,
    ttl: u64,
    compute_ms: Option<u64>,
) -> Result<String, ApiError> {
    let etag = sha1_smol::Sha1::from(text).digest().to_string();
    let mut pipe = redis::pipe();
    pipe.atomic().del(full).ignore();
    let hset = pipe
        .cmd("HSET")
        .arg(full)
        .arg("v")
        .arg(text)
        .arg("e")
        .arg(&etag);
    if let Some(ms) = compute_ms {
        hset.arg("c").arg(ms);
    }
    pipe.ignore().expire(full, ttl as i64).ignore();
    let mut redis = state.redis.clone();
    let () = pipe.query_async(&mut redis).await?;
    Ok(etag)
}

/// `MULTI TYPE HMGET GET PTTL EXEC`: the key read as what it is at that instant (one of
/// `HMGET` and `GET` fails with WRONGTYPE inside the transaction, and is ignored).
async fn read_any_type(
    redis: &mut shared::state::Redis,
    key: &str,
    full: &str,
) -> Result<(Fields, i64), ApiError> {
    let replies: Vec<redis::RedisResult<redis::Value>> = redis::pipe()
        .atomic()
        .ignore_errors()
        .cmd("TYPE")
        .arg(full)
        .cmd("HMGET")
        .arg(full)
        .arg(&["v", "e", "c"])
        .get(full)
        .pttl(full)
        .query_async(redis)
        .await?;
    let mut replies = replies.into_iter();
    let mut next = || replies.next().unwrap_or(Ok(redis::Value::Nil));
    let (kind, hash, plain, pttl) = (next()?, next(), next(), next()?);
    let kind: String = redis::from_redis_value(kind).map_err(redis::RedisError::from)?;
    let pttl: i64 = redis::from_redis_value(pttl).map_err(redis::RedisError::from)?;
    let fields: Fields = match kind.as_str() {
        "hash" => redis::from_redis_value(hash?).map_err(redis::RedisError::from)?,
        "string" => {
            let text: Option<Vec<u8>> =
                redis::from_redis_value(plain?).map_err(redis::RedisError::from)?;
            let etag = text
                .as_deref()
                .map(|t| sha1_smol::Sha1::from(t).digest().to_string());
            (text, etag, None)
        }
        "none" => (None, None, None),
        _ => return Err(ApiError::conflict(not_an_entry(key))),
    };
    Ok((fields, pttl))
}

fn wrong_type(e: &redis::RedisError) -> bool {
    shared::error::server_code(e).as_deref() == Some("WRONGTYPE")
}

/// XFetch (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
/// Prevention", VLDB 2015): recompute now when `delta × beta × −ln(u) ≥ time left`, `u`
/// uniform in (0, 1]. Rare while expiry is far, likely as it nears.
fn xfetch(compute_ms: u64, beta: f64, pttl_ms: i64) -> bool {
    if pttl_ms < 0 {
        // -1: no expiry, nothing to refresh ahead of; -2: already gone.
        return false;
    }
    let u = 1.0 - rand::random::<f64>();
    compute_ms as f64 * beta * -u.ln() >= pttl_ms as f64
}

/// `GET /cache/{key}`: the value and its remaining TTL.
#[utoipa::path(
    get,
    path = "/cache/{key}",
    summary = "Get a cache value",
    description = "`HMGET` + `PTTL`, pipelined in one round trip. Carries the entry's `ETag`; \
        `If-None-Match` naming it is a 304 without a body. An entry written with `compute_ms` \
        also answers `refresh_recommended` (XFetch stampede protection, `beta` tunes it).",
    params(
        Key,
        GetQuery,
        ReadPreconditions
    ),
    responses(
        (status = 200, description = "The value", body = Entry, headers(
            ("ETag" = String, description = "The entry's entity tag (SHA-1 of the value's text, quoted)"))),
        (status = 304, description = "Not modified: `If-None-Match` names the current ETag", headers(
            ("ETag" = String, description = "The entry's entity tag"))),
        (status = 404, description = "Not found"),
        (status = 409, description = "The key holds data that is not a cache entry (another Redis type, or a hash without the entry's fields, e.g. another client's): `DELETE` removes it"),
        (status = 412, description = "`If-Match` does not name the current ETag")
    )
)]
async fn get_entry(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<Key>,
    ApiQuery(query): ApiQuery<GetQuery>,
    pre: Preconditions,
) -> Result<Response, ApiError> {
    let beta = XFETCH_BETA.check("beta", query.beta)?;
    let full = state.keys.cache(&key);
    let Some(stored) = read_entry(&state, &key, &full).await? else {
        return Err(ApiError::not_found(format!(
            "key '{key}' is not in the cache (never set, deleted or expired)"
        )));
    };
    if let Some(tags) = &pre.if_match
        && !tags.matches_strong(&stored.etag)
    {
        if pre.only_weak_match(Some(&stored.etag)) {
            return Err(weak_if_match(&key, Some(&stored.etag), "", "read"));
        }
        return Err(ApiError::precondition_failed(
            "If-Match",
            format!(
                "If-Match: the entry under '{key}' has another ETag (\"{}\")",
                stored.etag
            ),
        )
        .with("current_etag", stored.etag));
    }
    let etag = etag_header(&stored.etag);
    if let Some(tags) = &pre.if_none_match
        && tags.matches_weak(&stored.etag)
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Some(etag) = etag {
            response.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(response);
    }
    let mut response = Json(Entry {
        key: key.into(),
        value: raw_json_or_string(&stored.text),
        // As `TTL` rounds: to the nearest second.
        ttl_seconds: ttl_from_redis(if stored.pttl < 0 {
            stored.pttl
        } else {
            (stored.pttl + 500) / 1000
        }),
        compute_ms: stored.compute_ms,
        refresh_recommended: stored
            .compute_ms
            .map(|delta| xfetch(delta, beta, stored.pttl)),
    })
    .into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// `DELETE /cache/{key}`.
#[utoipa::path(
    delete,
    path = "/cache/{key}",
    summary = "Delete a cache value (conditionally with If-Match / If-None-Match)",
    description = "`UNLINK`; with `If-Match` (or `If-None-Match`) a compare-and-delete in one script: the entry is deleted only if its ETag still matches (412 otherwise, nothing deleted). A missing entry is a 404 whatever the preconditions.",
    params(Key, WritePreconditions),
    responses(
        (status = 200, description = "Deleted", body = EntryDeleted),
        (status = 404, description = "Not found"),
        (status = 412, description = "A precondition failed: nothing was deleted; the problem names the header and carries `current_etag` (null when the key holds data of another type)")
    )
)]
async fn delete_entry(
    State(state): State<AppState>,
    idempotency: Idempotency,
    pre: Preconditions,
    ApiPath(key): ApiPath<Key>,
) -> Result<Response, ApiError> {
    let full = state.keys.cache(&key);
    let removed = if pre.any() {
        let conditions = pre.script_args();
        let deleted: Outcome<(u8, Option<String>, String)> = idempotency
            .run(&state, &scripts::CACHE_DELETE, &full, |s| {
                s.key(&full).arg(&conditions);
            })
            .await?;
        let (applied, current, failed) = &deleted.value;
        if *applied != 1 && failed == "If-Match" && pre.only_weak_match(current.as_deref()) {
            return Err(weak_if_match(
                &key,
                current.as_deref(),
                "nothing was deleted: ",
                "delete",
            ));
        }
        if *applied != 1 {
            return Err(precondition_failed(
                failed,
                &key,
                current.as_deref(),
                "nothing was deleted",
            ));
        }
        // `{1, 1, ''}` deleted, `{1, 0, ''}` not found: the second item is the count.
        let count = u64::from(current.as_deref() == Some("1"));
        Outcome {
            value: count,
            replayed: deleted.replayed,
        }
    } else {
        idempotency.unlink(&state, &full).await?
    };
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
