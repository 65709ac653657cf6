//! The `queue` function: task queues on Redis lists. `{name}` defaults to `tasks` (`/queue`).
//!
//! | route | Redis |
//! |---|---|
//! | `POST /queue/{name}` | `RPUSH` |
//! | `GET /queue/{name}` | `queue_pop.lua`: `LPOP` (FIFO) + `LLEN` |
//! | `POST /queue/{name}/batch` | one `RPUSH` of every task |
//! | `GET /queue/{name}/batch?count=` | `queue_pop.lua`: `LPOP count` |
//! | `GET /queue/{name}/all?offset=&limit=` | `queue_peek.lua`: `LRANGE` page + `LLEN` |
//!
//! Pops and pages are bounded by bytes as well as by count
//! ([`shared::lambda::RESPONSE_BODY_BUDGET`]): the scripts stop before the task that would
//! take the answer past it, so a batch pop never removes a task its answer cannot carry
//! under Lambda's payload limit.
//! | `DELETE /queue/{name}` | `queue_clear.lua` |
//! | `POST /queue/{name}/claim?visibility=` | `queue_claim.lua`: `LMOVE` to the processing list + lease |
//! | `POST /queue/{name}/ack` `{receipt}` | `queue_ack.lua` |
//! | `POST /queue/{name}?delay_ms=` | `queue_schedule.lua`: `ZADD` to the schedule |
//! | `POST /queue/{name}/nack` `{receipt, delay_ms?}` | `queue_nack.lua`: back to the head, the schedule or the dead letters |
//! | `GET /queue/{name}/dead?offset=&limit=` | `queue_peek.lua` on the dead letters |
//! | `POST /queue/{name}/dead/replay` `{ids?}` | `queue_replay.lua` |
//! | `DELETE /queue/{name}/dead` | `UNLINK` of the dead letters |
//!
//! Reliable consumption: a claimed task sits in the processing list with a lease; `ack`
//! removes it. Every script that hands tasks out first moves lapsed claims back to the head
//! of the queue, so a consumer that dies between claim and ack loses nothing; a task whose
//! lapsed (or nacked) claim was its `max_deliveries`-th goes to the dead letters instead, and
//! scheduled tasks that are due join the tail (`failures.rs`: nack and dead letters).

mod failures;

use axum::{Json, Router, extract::State, http::StatusCode, response::Response};
use redis::{AsyncCommands, FromRedisValue, ScriptInvocation};
use serde_json::Value;
use shared::{
    ApiError, ApiJson, ApiPath, ApiQuery, AppState, Idempotency,
    idempotency::Outcome,
    models::{
        StoredText, counted,
        ids::QueueName,
        now_rfc3339,
        queue::{
            AckClaim, BATCH, BATCH_POP, BatchQuery, BatchQueued, BatchScheduled, ClaimQuery,
            DELAY_MS, MAX_DELIVERIES, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, NewTask, OFFSET,
            PAGE_LIMIT, PageQuery, PushQuery, QueueCleared, QueuePage, StoredTask, TaskAcked,
            TaskBatch, TaskClaimed, TaskPopped, TaskQueued, TaskScheduled, TasksPopped,
            VISIBILITY_SECS,
        },
        random_token, raw_json_or_string,
    },
    scripts,
    scripts::WriteScript,
    validate,
};
use utoipa_axum::{router::OpenApiRouter, routes};

pub use shared::models::ids::{DEFAULT_QUEUE, RESERVED_NAMES};

/// The queue routes with their OpenAPI description, from the same handlers.
pub fn api() -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::new()
        .routes(routes!(push_default, pop_default, clear_default))
        .routes(routes!(push_task, pop_task, clear_queue))
        .routes(routes!(push_batch, pop_batch))
        .routes(routes!(peek_queue))
        .routes(routes!(claim_task))
        .routes(routes!(ack_task))
        .routes(routes!(failures::nack_task))
        .routes(routes!(failures::dead_page, failures::clear_dead))
        .routes(routes!(failures::replay_dead));
    shared::docs::tag_operations(api.get_openapi_mut(), "queue");
    api
}

/// The queue routes, with their state.
pub fn router(state: AppState) -> Router {
    // Pops hand tasks out, and every GET (a page, the dead letters too) moves lapsed claims
    // back: no HEAD, never cached.
    shared::http::guarded(
        api().split_for_parts(),
        &[
            "/queue",
            "/queue/{name}",
            "/queue/{name}/batch",
            "/queue/{name}/all",
            "/queue/{name}/dead",
        ],
        state,
    )
}

/// Checks a task and turns it into what is stored. `at` prefixes field names (`[3].`).
fn stored(task: NewTask, at: &str) -> Result<String, ApiError> {
    let field = |name: &str| format!("{at}{name}");
    validate::text(&field("title"), &task.title, MAX_TITLE_CHARS)?;
    if let Some(d) = &task.description
        && d.chars().count() > MAX_DESCRIPTION_CHARS
    {
        return Err(ApiError::validation(
            field("description"),
            format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(serde_json::to_string(&StoredTask {
        id: task.id.into(),
        title: task.title,
        description: task.description,
        priority: task.priority.unwrap_or_default(),
        created_at: now_rfc3339(),
    })?)
}

/// The id of a stored task (for messages and answers).
pub(crate) fn task_id(stored: &str) -> String {
    serde_json::from_str::<Value>(stored)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn empty(name: &str) -> ApiError {
    ApiError::not_found(format!("queue '{name}' is empty"))
}

/// Runs `script` on every key of queue `name` (in the order of `Keys::queue`, which the
/// queue scripts expect), with the arguments `args` adds. The waiting list decides where an
/// Idempotency-Key's record goes.
pub(crate) async fn on_queue<T: FromRedisValue>(
    state: &AppState,
    idempotency: &Idempotency,
    script: &WriteScript,
    name: &str,
    args: impl FnOnce(&mut ScriptInvocation<'_>),
) -> Result<Outcome<T>, ApiError> {
    let keys = state.keys.queue(name);
    idempotency
        .run(state, script, &keys[0], |s| {
            s.key(&keys);
            args(s);
        })
        .await
}

/// Appends `payloads` (RPUSH; the scripted twin with an Idempotency-Key) and returns the
/// queue's length after the push.
async fn append(
    state: &AppState,
    idempotency: &Idempotency,
    name: &str,
    payloads: &[String],
) -> Result<Outcome<u64>, ApiError> {
    let pending = state.keys.queue_pending(name);
    if idempotency.is_keyed() {
        return idempotency
            .run(state, &scripts::QUEUE_PUSH, &pending, |s| {
                s.key(&pending).arg(payloads);
            })
            .await;
    }
    let mut redis = state.redis.clone();
    Ok(Outcome::fresh(redis.rpush(&pending, payloads).await?))
}

async fn push(
    state: AppState,
    idempotency: Idempotency,
    name: QueueName,
    query: PushQuery,
    task: NewTask,
) -> Result<Response, ApiError> {
    let delay_ms = DELAY_MS.check("delay_ms", query.delay_ms)?;
    let id = task.id.clone();
    let payload = stored(task, "")?;
    if delay_ms > 0 {
        let scheduled = schedule(&state, &idempotency, &name, delay_ms, &[payload]).await?;
        let (visible_at_ms, scheduled_tasks) = scheduled.value;
        return Ok(scheduled.respond((
            StatusCode::ACCEPTED,
            Json(TaskScheduled {
                message: format!("Task '{id}' scheduled for queue '{name}' in {delay_ms} ms"),
                task_id: id.into(),
                visible_at_ms,
                scheduled_tasks,
            }),
        )));
    }
    let length = append(&state, &idempotency, &name, &[payload]).await?;
    Ok(length.respond((
        StatusCode::CREATED,
        Json(TaskQueued {
            message: format!("Task '{id}' added to queue '{name}'"),
            task_id: id.into(),
            queue_position: length.value,
            queue_length: length.value,
        }),
    )))
}

/// Schedules `payloads` to join the queue's tail in `delay_ms` (`queue_schedule.lua`): when
/// they are due, and how many tasks the queue has scheduled now.
async fn schedule(
    state: &AppState,
    idempotency: &Idempotency,
    name: &str,
    delay_ms: u64,
    payloads: &[String],
) -> Result<Outcome<(u64, u64)>, ApiError> {
    let keys = state.keys.queue(name);
    idempotency
        .run(state, &scripts::QUEUE_SCHEDULE, &keys[0], |s| {
            s.key(&keys[7])
                .arg(delay_ms)
                .arg(random_token())
                .arg(payloads);
        })
        .await
}

/// Runs `queue_pop.lua` for up to `count` tasks.
async fn pop(state: &AppState, name: &str, count: u64) -> Result<(u64, Vec<StoredText>), ApiError> {
    let mut redis = state.redis.clone();
    Ok(scripts::QUEUE_POP
        .key(&state.keys.queue(name))
        .arg(count)
        .arg(shared::lambda::RESPONSE_BODY_BUDGET)
        .arg(shared::lambda::PER_ITEM_BYTES)
        .invoke_async(&mut redis)
        .await?)
}

async fn pop_one(state: AppState, name: QueueName) -> Result<Json<TaskPopped>, ApiError> {
    let (remaining_tasks, mut tasks) = pop(&state, &name, 1).await?;
    let task = tasks.pop().ok_or_else(|| empty(&name))?;
    Ok(Json(TaskPopped {
        task: raw_json_or_string(&task),
        remaining_tasks,
    }))
}

async fn clear(
    state: AppState,
    idempotency: Idempotency,
    name: QueueName,
) -> Result<Response, ApiError> {
    let deleted: Outcome<u64> =
        on_queue(&state, &idempotency, &scripts::QUEUE_CLEAR, &name, |_| {}).await?;
    Ok(deleted.respond(Json(QueueCleared {
        message: format!("Queue '{name}' cleared"),
        deleted_count: deleted.value,
    })))
}

/// `POST /queue/{name}`: appends a task (RPUSH).
#[utoipa::path(
    post,
    path = "/queue/{name}",
    summary = "Add a task (RPUSH)",
    params(QueueName, PushQuery),
    request_body = NewTask,
    responses(
        (status = 201, description = "Queued", body = TaskQueued),
        (status = 202, description = "Scheduled (`delay_ms` > 0): it joins the tail at `visible_at_ms`", body = TaskScheduled)
    )
)]
async fn push_task(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<PushQuery>,
    ApiJson(task): ApiJson<NewTask>,
) -> Result<Response, ApiError> {
    push(state, idempotency, name, query, task).await
}

/// `POST /queue`: appends a task to `tasks`.
#[utoipa::path(
    post,
    path = "/queue",
    summary = "Add a task to the `tasks` queue",
    params(PushQuery),
    request_body = NewTask,
    responses(
        (status = 201, description = "Queued", body = TaskQueued),
        (status = 202, description = "Scheduled (`delay_ms` > 0): it joins the tail at `visible_at_ms`", body = TaskScheduled)
    )
)]
async fn push_default(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiQuery(query): ApiQuery<PushQuery>,
    ApiJson(task): ApiJson<NewTask>,
) -> Result<Response, ApiError> {
    push(state, idempotency, QueueName::default_queue(), query, task).await
}

/// `GET /queue/{name}`: pops the oldest task (FIFO).
#[utoipa::path(
    get,
    path = "/queue/{name}",
    summary = "Pop the oldest task (FIFO)",
    params(QueueName),
    responses(
        (status = 200, description = "The oldest task, removed", body = TaskPopped),
        (status = 404, description = "The queue is empty")
    )
)]
async fn pop_task(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<QueueName>,
) -> Result<Json<TaskPopped>, ApiError> {
    pop_one(state, name).await
}

/// `GET /queue`: pops the oldest task of `tasks`.
#[utoipa::path(
    get,
    path = "/queue",
    summary = "Pop the oldest task of `tasks`",
    responses(
        (status = 200, description = "The oldest task, removed", body = TaskPopped),
        (status = 404, description = "The queue is empty")
    )
)]
async fn pop_default(State(state): State<AppState>) -> Result<Json<TaskPopped>, ApiError> {
    pop_one(state, QueueName::default_queue()).await
}

/// `DELETE /queue/{name}`: deletes the queue, claimed tasks included.
#[utoipa::path(
    delete,
    path = "/queue/{name}",
    summary = "Clear a queue (waiting, claimed, scheduled and dead tasks)",
    params(QueueName),
    responses(
        (status = 200, description = "Cleared", body = QueueCleared)
    )
)]
async fn clear_queue(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
) -> Result<Response, ApiError> {
    clear(state, idempotency, name).await
}

/// `DELETE /queue`: deletes `tasks`.
#[utoipa::path(
    delete,
    path = "/queue",
    summary = "Clear the `tasks` queue",
    responses(
        (status = 200, description = "Cleared", body = QueueCleared)
    )
)]
async fn clear_default(
    State(state): State<AppState>,
    idempotency: Idempotency,
) -> Result<Response, ApiError> {
    clear(state, idempotency, QueueName::default_queue()).await
}

/// `POST /queue/{name}/batch`: appends every task in one RPUSH, after checking them all.
#[utoipa::path(
    post,
    path = "/queue/{name}/batch",
    summary = "Add 1 to 1000 tasks in one RPUSH",
    description = "Every task is validated before any is pushed; `field` names the bad one (`[3].title`).",
    params(QueueName, PushQuery),
    request_body = TaskBatch,
    responses(
        (status = 201, description = "Queued", body = BatchQueued),
        (status = 202, description = "Scheduled (`delay_ms` > 0): they join the tail, in order, at `visible_at_ms`", body = BatchScheduled)
    )
)]
async fn push_batch(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<PushQuery>,
    ApiJson(TaskBatch(tasks)): ApiJson<TaskBatch>,
) -> Result<Response, ApiError> {
    let delay_ms = DELAY_MS.check("delay_ms", query.delay_ms)?;
    if !(BATCH.min..=BATCH.max).contains(&(tasks.len() as u64)) {
        return Err(ApiError::validation(
            "body",
            format!(
                "a batch holds {} to {} tasks, got {}",
                BATCH.min,
                BATCH.max,
                tasks.len()
            ),
        ));
    }
    let mut ids = Vec::with_capacity(tasks.len());
    let mut payloads = Vec::with_capacity(tasks.len());
    for (i, task) in tasks.into_iter().enumerate() {
        ids.push(task.id.to_string());
        payloads.push(stored(task, &format!("[{i}]."))?);
    }
    if delay_ms > 0 {
        let scheduled = schedule(&state, &idempotency, &name, delay_ms, &payloads).await?;
        let (visible_at_ms, scheduled_tasks) = scheduled.value;
        return Ok(scheduled.respond((
            StatusCode::ACCEPTED,
            Json(BatchScheduled {
                message: format!(
                    "{} scheduled for queue '{name}' in {delay_ms} ms",
                    counted(ids.len() as u64, "task", "tasks")
                ),
                task_ids: ids,
                visible_at_ms,
                scheduled_tasks,
            }),
        )));
    }
    let queue_length = append(&state, &idempotency, &name, &payloads).await?;
    Ok(queue_length.respond((
        StatusCode::CREATED,
        Json(BatchQueued {
            message: format!(
                "{} added to queue '{name}'",
                counted(ids.len() as u64, "task", "tasks")
            ),
            task_ids: ids,
            queue_length: queue_length.value,
        }),
    )))
}

/// `GET /queue/{name}/batch?count=`: pops up to `count` tasks in one call.
#[utoipa::path(
    get,
    path = "/queue/{name}/batch",
    summary = "Pop up to `count` tasks in one call",
    params(QueueName, BatchQuery),
    responses(
        (status = 200, description = "The oldest tasks, removed", body = TasksPopped),
        (status = 404, description = "The queue is empty")
    )
)]
async fn pop_batch(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<BatchQuery>,
) -> Result<Json<TasksPopped>, ApiError> {
    let count = BATCH_POP.check("count", query.count)?;
    let (remaining_tasks, tasks) = pop(&state, &name, count).await?;
    if tasks.is_empty() {
        return Err(empty(&name));
    }
    Ok(Json(TasksPopped {
        tasks: tasks.iter().map(|t| raw_json_or_string(t)).collect(),
        remaining_tasks,
    }))
}

/// `GET /queue/{name}/all?offset=&limit=`: one page, nothing removed.
#[utoipa::path(
    get,
    path = "/queue/{name}/all",
    summary = "View tasks without removing them (paged)",
    description = "Removes no task, but it is not a pure read: like every call that hands \
        tasks out, it first moves claims whose visibility timeout lapsed back to the head of \
        the queue (or to the dead letters, when it was the task's last allowed delivery) and \
        due scheduled tasks to its tail (a state change, so no HEAD and \
        `Cache-Control: no-store`).",
    params(QueueName, PageQuery),
    responses(
        (status = 200, description = "One page; `queue_length` is the total", body = QueuePage)
    )
)]
async fn peek_queue(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<QueuePage>, ApiError> {
    let limit = PAGE_LIMIT.check("limit", query.limit)?;
    let offset = OFFSET.check("offset", query.offset)?;
    let mut redis = state.redis.clone();
    let (queue_length, tasks, scheduled_tasks, dead_tasks): (u64, Vec<StoredText>, u64, u64) =
        scripts::QUEUE_PEEK
            .key(&state.keys.queue(&name))
            .arg(offset)
            .arg(limit)
            .arg(shared::lambda::RESPONSE_BODY_BUDGET)
            .arg(shared::lambda::PER_ITEM_BYTES)
            .invoke_async(&mut redis)
            .await?;
    let next_offset = offset + tasks.len() as u64;
    Ok(Json(QueuePage {
        queue_length,
        tasks: tasks.iter().map(|t| raw_json_or_string(t)).collect(),
        offset,
        limit,
        next_offset,
        scheduled_tasks,
        dead_tasks,
    }))
}

/// What `queue_claim.lua` answers: payload, lease deadline (ms), tasks left, receipt,
/// deliveries.
type Claim = (StoredText, u64, u64, String, u64);

/// `POST /queue/{name}/claim?visibility=&max_deliveries=`: takes the head task without
/// losing it.
#[utoipa::path(
    post,
    path = "/queue/{name}/claim",
    summary = "Claim the oldest task (reliable consumption)",
    description = "LMOVE to a processing list plus a lease, and the delivery counted (Lua). Not acked in time, the task returns to the head of the queue; if this claim was its `max_deliveries`-th, it goes to the dead letters instead.",
    params(QueueName, ClaimQuery),
    responses(
        (status = 200, description = "Claimed: ack it with the receipt within `visibility` seconds", body = TaskClaimed),
        (status = 404, description = "The queue is empty")
    )
)]
async fn claim_task(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    ApiQuery(query): ApiQuery<ClaimQuery>,
) -> Result<Response, ApiError> {
    let visibility = VISIBILITY_SECS.check("visibility", query.visibility)?;
    let max_deliveries = MAX_DELIVERIES.check("max_deliveries", query.max_deliveries)?;
    let claimed: Outcome<Option<Claim>> =
        on_queue(&state, &idempotency, &scripts::QUEUE_CLAIM, &name, |s| {
            s.arg(random_token())
                .arg(visibility * 1000)
                .arg(max_deliveries);
        })
        .await?;
    let Some((task, visible_again_at_ms, remaining_tasks, receipt, deliveries)) = &claimed.value
    else {
        return Err(empty(&name));
    };
    if claimed.replayed {
        // The recorded claim is history once it lapsed (or was acked or nacked): handing it
        // back would tell this client it holds a task that is someone else's now.
        let [_, _, claims, ..] = state.keys.queue(&name);
        let mut redis = state.redis.clone();
        let live: bool = redis.hexists(&claims, receipt).await?;
        if !live {
            return Err(ApiError::conflict(format!(
                "the claim recorded under this Idempotency-Key has ended (lapsed, acked or \
                 nacked): claim again with a new key to get a task of queue '{name}'"
            )));
        }
    }
    Ok(claimed.respond(Json(TaskClaimed {
        task: raw_json_or_string(task),
        receipt: receipt.clone(),
        visible_again_at_ms: *visible_again_at_ms,
        remaining_tasks: *remaining_tasks,
        deliveries: *deliveries,
    })))
}

/// `POST /queue/{name}/ack`: the claimed task is done; remove it for good.
#[utoipa::path(
    post,
    path = "/queue/{name}/ack",
    summary = "Acknowledge a claimed task (removes it for good)",
    params(QueueName),
    request_body = AckClaim,
    responses(
        (status = 200, description = "Acknowledged", body = TaskAcked),
        (status = 404, description = "Unknown receipt: never issued, already acked, or lapsed")
    )
)]
async fn ack_task(
    State(state): State<AppState>,
    idempotency: Idempotency,
    ApiPath(name): ApiPath<QueueName>,
    ApiJson(body): ApiJson<AckClaim>,
) -> Result<Response, ApiError> {
    let acked: Outcome<Option<StoredText>> =
        on_queue(&state, &idempotency, &scripts::QUEUE_ACK, &name, |s| {
            s.arg(body.receipt.as_str());
        })
        .await?;
    let task = acked.value.clone().ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown receipt for queue '{name}': never issued, already acked, or its claim \
             lapsed and the task went back to the queue"
        ))
    })?;
    Ok(acked.respond(Json(TaskAcked {
        message: format!("Task '{}' acknowledged", task_id(&task)),
        receipt: body.receipt.into(),
        task: raw_json_or_string(&task),
    })))
}
