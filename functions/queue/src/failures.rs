//! When a task fails: `nack` gives a claimed task back (now, later, or to the dead letters on
//! its last allowed delivery), and the dead letters can be read, replayed and deleted.
//!
//! A task reaches the dead letters when a claim that brought its deliveries to the claim's
//! `max_deliveries` lapses or is nacked (`queue_requeue_expired.lua`, `queue_nack.lua`): a
//! poison task stops coming back instead of failing forever. The dead letters are a list with
//! no TTL, like the queue itself: a queue and what it could not process are kept until someone
//! decides (replay, or delete). Every call here first runs the queue's prologue
//! (`queue_requeue_expired.lua`), so a claim that lapsed as its task's last delivery is a dead
//! letter by then even when no consumer is left to claim.

use axum::{Json, extract::State, response::Response};
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        StoredText, counted,
        ids::QueueName,
        queue::{
            DELAY_MS, DeadCleared, DeadPage, DeadReplayed, NackClaim, OFFSET, PAGE_LIMIT,
            PageQuery, REPLAY_IDS, REPLAY_LOOK, REPLAY_MOST, ReplayDead, TaskNacked,
        },
        random_token, raw_json_or_string,
    },
    scripts,
};

use crate::{on_queue, task_id};

/// `POST /queue/{name}/nack`: the consumer gives its claimed task back.
#[utoipa::path(
    post,
    path = "/queue/{name}/nack",
    summary = "Give a claimed task back (now, later, or to the dead letters)",
    description = "`queue_nack.lua`: the claim ends; the task goes back to the head of the queue (`delay_ms` absent or 0) or to the schedule, visible again after `delay_ms`. If that claim was its `max_deliveries`-th, it goes to the dead letters instead.",
    params(QueueName),
    request_body = NackClaim,
    responses(
        (status = 200, description = "Given back; `returned_to` says where", body = TaskNacked),
        (status = 404, description = "Unknown receipt: never issued, already acked or nacked, or lapsed")
    )
)]
pub(crate) async fn nack_task(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    ApiJson(body): ApiJson<NackClaim>,
) -> Result<Response, ApiError> {
    let delay_ms = DELAY_MS.check("delay_ms", body.delay_ms.unwrap_or(0))?;
    let nacked: Outcome<Option<(StoredText, String, u64, u64)>> =
        on_queue(&state, &idempotency, &scripts::QUEUE_NACK, &name, |s| {
            s.arg(body.receipt.as_str())
                .arg(delay_ms)
                .arg(random_token());
        })
        .await?;
    let Some((task, returned_to, deliveries, due)) = nacked.value.clone() else {
        return Err(ApiError::not_found(format!(
            "unknown receipt for queue '{name}': never issued, already acked or nacked, or its \
             claim lapsed and the task went back to the queue"
        )));
    };
    let id = task_id(&task);
    let message = match returned_to.as_str() {
        "dead" => format!(
            "Task '{id}' moved to the dead letters of '{name}' after {}",
            counted(deliveries, "delivery", "deliveries")
        ),
        "scheduled" => format!("Task '{id}' back in queue '{name}' in {delay_ms} ms"),
        _ => format!("Task '{id}' back at the head of queue '{name}'"),
    };
    Ok(nacked.respond(Json(TaskNacked {
        message,
        task: raw_json_or_string(&task),
        returned_to,
        deliveries,
        visible_at_ms: (due > 0).then_some(due),
    })))
}

/// `GET /queue/{name}/dead`: one page of the dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/queue/{name}/dead",
    summary = "Page through a queue's dead letters",
    description = "`LRANGE` in small chunks, bounded by count and bytes like `GET /queue/{name}/all`; nothing is removed. Like every call that reads the queue's state, it first moves lapsed claims back (or, when they were a task's last delivery, here), so it is never cached.",
    params(QueueName, PageQuery),
    responses(
        (status = 200, description = "One page; `dead_tasks` is the total", body = DeadPage)
    )
)]
pub(crate) async fn dead_page(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<DeadPage>, ApiError> {
    let limit = PAGE_LIMIT.check("limit", query.limit)?;
    let offset = OFFSET.check("offset", query.offset)?;
    let keys = state.keys.queue(&name);
    let mut redis = state.redis.clone();
    let (dead_tasks, tasks, _, _): (u64, Vec<StoredText>, u64, u64) = scripts::QUEUE_PEEK
        .key(&keys)
        .arg(offset)
        .arg(limit)
        .arg(shared::lambda::RESPONSE_BODY_BUDGET)
        .arg(shared::lambda::PER_ITEM_BYTES)
        // The dead letters, not the queue (`queue_peek.lua`).
        .arg(7)
        .invoke_async(&mut redis)
        .await?;
    Ok(Json(DeadPage {
        dead_tasks,
        next_offset: offset + tasks.len() as u64,
        tasks: tasks.iter().map(|t| raw_json_or_string(t)).collect(),
        offset,
        limit,
    }))
}

/// `POST /queue/{name}/dead/replay`: dead letters back to the queue.
#[utoipa::path(
    post,
    path = "/queue/{name}/dead/replay",
    summary = "Replay dead letters (all, or by task id)",
    description = "`queue_replay.lua`: back to the queue's tail with their delivery counts reset. No body (or `{}`): the oldest 1000 (call again for more); `{\"ids\": [...]}`: the listed tasks among the first 10000 dead letters.",
    params(QueueName),
    request_body(content = Option<ReplayDead>, description = "Optional: which tasks"),
    responses(
        (status = 200, description = "Replayed (possibly none)", body = DeadReplayed)
    )
)]
pub(crate) async fn replay_dead(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    body: Option<ApiJson<Option<ReplayDead>>>,
) -> Result<Response, ApiError> {
    // No body, `null`, `{}` or `{"ids": null}`: every dead letter; a list (not an empty
    // one): those.
    let ids = match body.and_then(|ApiJson(b)| b).and_then(|b| b.ids) {
        Some(ids) => {
            REPLAY_IDS.check("ids", ids.len() as u64)?;
            ids
        }
        None => Vec::new(),
    };
    let replayed: Outcome<(u64, u64, u64)> =
        on_queue(&state, &idempotency, &scripts::QUEUE_REPLAY, &name, |s| {
            s.arg(REPLAY_MOST).arg(REPLAY_LOOK);
            for id in &ids {
                s.arg(id.as_str());
            }
        })
        .await?;
    let (moved, dead_tasks, queue_length) = replayed.value;
    Ok(replayed.respond(Json(DeadReplayed {
        message: format!(
            "{} of '{name}' back in the queue",
            counted(moved, "dead letter", "dead letters")
        ),
        replayed: moved,
        dead_tasks,
        queue_length,
    })))
}

/// `DELETE /queue/{name}/dead`: the dead letters, gone.
#[utoipa::path(
    delete,
    path = "/queue/{name}/dead",
    summary = "Delete a queue's dead letters",
    params(QueueName),
    responses(
        (status = 200, description = "Deleted", body = DeadCleared)
    )
)]
pub(crate) async fn clear_dead(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
) -> Result<Response, ApiError> {
    let removed: Outcome<u64> = on_queue(
        &state,
        &idempotency,
        &scripts::QUEUE_DEAD_CLEAR,
        &name,
        |_| {},
    )
    .await?;
    Ok(removed.respond(Json(DeadCleared {
        message: format!("Dead letters of '{name}' deleted"),
        deleted_count: removed.value,
    })))
}
