//! Bodies of the `queue` function.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Ref, RefOr,
        schema::{ArrayBuilder, ObjectBuilder, Schema},
    },
};

use super::ids::{Receipt, TaskId};
use crate::validate::{self, Bounds, Defaulted, query_parameters};

/// Tasks in one batch push or pop, and in one page.
pub const BATCH: Bounds<u64> = Bounds::new(1, 1000);

/// A batch pop's `count`: [`BATCH`], 10 when absent.
pub const BATCH_POP: Defaulted<u64> = Defaulted::of(BATCH, 10);

/// A page's `limit`: [`BATCH`], 100 when absent.
pub const PAGE_LIMIT: Defaulted<u64> = Defaulted::of(BATCH, 100);

/// A page's `offset`, 0 when absent: a Redis list holds at most 2^32 - 1 elements.
pub const OFFSET: Defaulted<u64> = Defaulted::new(0, u32::MAX as u64, 0);

/// A claim's visibility timeout, seconds: at most 12 h, 30 s when absent.
pub const VISIBILITY_SECS: Defaulted<u64> = Defaulted::new(1, 43_200, 30);

/// Longest task title, in characters.
pub const MAX_TITLE_CHARS: usize = 1000;

/// Longest task description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// How many claims a task may get (`max_deliveries` of a claim): a claim that lapses (or is
/// nacked) once the task has been delivered this often sends it to the dead letters. 5 when
/// absent.
pub const MAX_DELIVERIES: Defaulted<u64> = Defaulted::new(1, 100, 5);

/// How long a pushed or nacked task waits before it is visible, ms (`delay_ms`): at most a
/// week, none when absent.
pub const DELAY_MS: Defaulted<u64> = Defaulted::new(0, 604_800_000, 0);

/// Most dead letters one replay moves, and most it looks through to find listed ids.
pub const REPLAY_MOST: u64 = 1000;
/// See [`REPLAY_MOST`].
pub const REPLAY_LOOK: u64 = 10_000;

/// Most ids one replay lists.
pub const REPLAY_IDS: Bounds<u64> = Bounds::new(1, 100);

query_parameters! {
    /// The schema of `max_deliveries` ([`MAX_DELIVERIES`]).
    MaxDeliveriesParam = MAX_DELIVERIES;
    /// The schema of `delay_ms` ([`DELAY_MS`]).
    DelayParam = DELAY_MS;
    /// The schema of a batch pop's `count` ([`BATCH_POP`]).
    BatchPopParam = BATCH_POP;
    /// The schema of a page's `limit` ([`PAGE_LIMIT`]).
    PageLimitParam = PAGE_LIMIT;
    /// The schema of a page's `offset` ([`OFFSET`]).
    OffsetParam = OFFSET;
    /// The schema of `visibility` ([`VISIBILITY_SECS`]).
    VisibilityParam = VISIBILITY_SECS;
}

#[allow(deprecated)] // the derived schemas write `example` too
fn title_schema() -> ObjectBuilder {
    validate::text_schema(MAX_TITLE_CHARS, false)
        .description(Some(format!("1 to {MAX_TITLE_CHARS} characters.")))
        .example(Some("Send email".into()))
}

#[allow(deprecated)] // the derived schemas write `example` too
fn description_schema() -> ObjectBuilder {
    validate::string_schema(true)
        .max_length(Some(MAX_DESCRIPTION_CHARS))
        .description(Some(format!("Up to {MAX_DESCRIPTION_CHARS} characters.")))
        .example(Some("Send welcome email to new user".into()))
}

/// Task priority (informational: the queue is FIFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Low.
    Low,
    /// Medium (the default).
    #[default]
    Medium,
    /// High.
    High,
}

/// A task as clients send it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"id": "task1", "title": "Send email",
    "description": "Send welcome email to new user", "priority": "high"}))]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    // Described by its type.
    #[schema(inline)]
    pub id: TaskId,
    // Described in `title_schema`.
    #[schema(schema_with = title_schema)]
    pub title: String,
    // Described in `description_schema`.
    #[serde(default)]
    #[schema(schema_with = description_schema)]
    pub description: Option<String>,
    /// `low`, `medium` (default) or `high`.
    #[serde(default)]
    pub priority: Option<Priority>,
}

/// A task as stored (and handed out): the client's fields plus `created_at`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredTask {
    /// The client's id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Priority.
    pub priority: Priority,
    /// When it was queued (RFC 3339, UTC).
    pub created_at: String,
}

/// `POST /queue/{name}/batch` body: [`BATCH`] tasks, all checked before any is queued.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct TaskBatch(pub Vec<NewTask>);

impl utoipa::PartialSchema for TaskBatch {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(RefOr::Ref(Ref::from_schema_name(NewTask::name())))
            .description(Some(format!(
                "`POST /queue/{{name}}/batch` body: {} to {} tasks, all checked before any is \
                 queued.",
                BATCH.min, BATCH.max
            )))
            .min_items(usize::try_from(BATCH.min).ok())
            .max_items(usize::try_from(BATCH.max).ok())
            .build()
            .into()
    }
}

impl ToSchema for TaskBatch {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((NewTask::name().into(), NewTask::schema()));
        NewTask::schemas(schemas);
    }
}

/// `POST /queue/{name}` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskQueued {
    /// Human sentence.
    pub message: String,
    /// The task's id.
    pub task_id: String,
    /// 1-based position from the head.
    pub queue_position: u64,
    /// Tasks waiting, this one included.
    pub queue_length: u64,
}

/// `POST /queue/{name}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    /// Milliseconds before the task becomes visible (0: at once). A delayed task waits in the
    /// queue's schedule, then joins the tail.
    #[serde(default)]
    #[param(inline, value_type = DelayParam)]
    pub delay_ms: u64,
}

/// `POST /queue/{name}?delay_ms=` answer (202): scheduled, not visible yet.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskScheduled {
    /// Human sentence.
    pub message: String,
    /// The task's id.
    pub task_id: String,
    /// When it joins the queue's tail (Unix ms, Redis clock).
    pub visible_at_ms: u64,
    /// Tasks scheduled in this queue, this one included.
    pub scheduled_tasks: u64,
}

/// `POST /queue/{name}/batch?delay_ms=` answer (202): scheduled, not visible yet.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchScheduled {
    /// Human sentence.
    pub message: String,
    /// The ids, in the order they will join the queue.
    pub task_ids: Vec<String>,
    /// When they join the queue's tail (Unix ms, Redis clock).
    pub visible_at_ms: u64,
    /// Tasks scheduled in this queue, these included.
    pub scheduled_tasks: u64,
}

/// `GET /queue/{name}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPopped {
    /// The oldest task, now removed.
    #[schema(value_type = serde_json::Value)]
    pub task: Box<RawValue>,
    /// Tasks still waiting.
    pub remaining_tasks: u64,
}

/// `POST /queue/{name}/batch` answer (201).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchQueued {
    /// Human sentence.
    pub message: String,
    /// The ids, in queue order.
    pub task_ids: Vec<String>,
    /// Tasks waiting after the push.
    pub queue_length: u64,
}

/// `GET /queue/{name}/batch` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// Most tasks to pop.
    #[serde(default = "default_batch")]
    #[param(inline, value_type = BatchPopParam)]
    pub count: u64,
}

fn default_batch() -> u64 {
    BATCH_POP.default
}

/// `GET /queue/{name}/batch` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TasksPopped {
    /// The tasks, oldest first, now removed: fewer than `count` when the queue ran out or
    /// their size reached the answer's byte budget (`remaining_tasks` tells which).
    #[schema(value_type = Vec<serde_json::Value>)]
    pub tasks: Vec<Box<RawValue>>,
    /// Tasks still waiting.
    pub remaining_tasks: u64,
}

/// `GET /queue/{name}/all` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Tasks to skip from the head.
    #[serde(default)]
    #[param(inline, value_type = OffsetParam)]
    pub offset: u64,
    /// Page size.
    #[serde(default = "default_page")]
    #[param(inline, value_type = PageLimitParam)]
    pub limit: u64,
}

fn default_page() -> u64 {
    PAGE_LIMIT.default
}

/// `GET /queue/{name}/all` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuePage {
    /// All tasks waiting (not just this page).
    pub queue_length: u64,
    /// This page, head first.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub tasks: Vec<Box<RawValue>>,
    /// As asked.
    pub offset: u64,
    /// As asked.
    pub limit: u64,
    /// Where the next page starts: `offset` plus the tasks in this one, which can be fewer
    /// than `limit` when their size reached the answer's byte budget.
    pub next_offset: u64,
    /// Tasks scheduled for later (pushed or nacked with `delay_ms`), not in `queue_length`.
    pub scheduled_tasks: u64,
    /// Dead letters (`GET /queue/{name}/dead`), not in `queue_length`.
    pub dead_tasks: u64,
}

/// `GET /queue/{name}/dead` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadPage {
    /// All dead letters (not just this page).
    pub dead_tasks: u64,
    /// This page, oldest first.
    #[schema(value_type = Vec<serde_json::Value>)]
    pub tasks: Vec<Box<RawValue>>,
    /// As asked.
    pub offset: u64,
    /// As asked.
    pub limit: u64,
    /// Where the next page starts (as in `GET /queue/{name}/all`).
    pub next_offset: u64,
}

/// `POST /queue/{name}/dead/replay` body: which dead letters (none or `{}`: all).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"ids": ["task1", "task7"]}))]
#[serde(deny_unknown_fields)]
pub struct ReplayDead {
    /// The task ids to replay (1 to 100); absent: every dead letter (1000 per call).
    #[serde(default)]
    #[schema(inline, min_items = 1, max_items = 100)]
    pub ids: Option<Vec<TaskId>>,
}

/// `POST /queue/{name}/dead/replay` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadReplayed {
    /// Human sentence.
    pub message: String,
    /// Tasks moved back to the queue's tail, their deliveries reset.
    pub replayed: u64,
    /// Dead letters left (call again to replay more than 1000).
    pub dead_tasks: u64,
    /// Tasks waiting after the replay.
    pub queue_length: u64,
}

/// `DELETE /queue/{name}/dead` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadCleared {
    /// Human sentence.
    pub message: String,
    /// Dead letters deleted.
    pub deleted_count: u64,
}

/// `POST /queue/{name}/nack` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"receipt": "6a156c03ed9f731b862df596a29f63ba", "delay_ms": 5000}))]
#[serde(deny_unknown_fields)]
pub struct NackClaim {
    // Described by its type.
    #[schema(inline)]
    pub receipt: Receipt,
    // Described in `nack_delay_schema`.
    #[serde(default, deserialize_with = "super::integral::opt_u64")]
    #[schema(schema_with = nack_delay_schema)]
    pub delay_ms: Option<u64>,
}

fn nack_delay_schema() -> ObjectBuilder {
    DELAY_MS.bounds.nullable_schema().description(Some(format!(
        "Milliseconds before the task is visible again ({}); absent or 0: at once, at the \
         head of the queue.",
        DELAY_MS.bounds
    )))
}

/// `POST /queue/{name}/nack` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskNacked {
    /// Human sentence.
    pub message: String,
    /// The task given back.
    #[schema(value_type = serde_json::Value)]
    pub task: Box<RawValue>,
    /// Where it went: `queued` (head of the queue), `scheduled` (visible at
    /// `visible_at_ms`) or `dead` (that claim was its last allowed delivery).
    pub returned_to: String,
    /// Times the task was claimed so far.
    pub deliveries: u64,
    /// When a scheduled task becomes visible (Unix ms, Redis clock); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_at_ms: Option<u64>,
}

/// `DELETE /queue/{name}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueCleared {
    /// Human sentence.
    pub message: String,
    /// Tasks deleted: waiting, claimed, scheduled and dead.
    pub deleted_count: u64,
}

/// `POST /queue/{name}/claim` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClaimQuery {
    /// Seconds the task stays invisible; not acked by then, it returns to the head.
    #[serde(default = "default_visibility")]
    #[param(inline, value_type = VisibilityParam)]
    pub visibility: u64,
    /// The most claims the task may get: if this claim is its `max_deliveries`-th and
    /// lapses (or is nacked), the task goes to the dead letters, not back to the queue.
    #[serde(default = "default_max_deliveries")]
    #[param(inline, value_type = MaxDeliveriesParam)]
    pub max_deliveries: u64,
}

fn default_max_deliveries() -> u64 {
    MAX_DELIVERIES.default
}

fn default_visibility() -> u64 {
    VISIBILITY_SECS.default
}

/// `POST /queue/{name}/claim` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskClaimed {
    /// The task, now in the processing list.
    #[schema(value_type = serde_json::Value)]
    pub task: Box<RawValue>,
    /// Pass it to `ack` once the task is done.
    pub receipt: String,
    /// When the claim lapses (Unix ms, Redis clock).
    pub visible_again_at_ms: u64,
    /// Tasks still waiting.
    pub remaining_tasks: u64,
    /// Times the task has been claimed, this claim included.
    pub deliveries: u64,
}

/// `POST /queue/{name}/ack` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckClaim {
    // Described by its type.
    #[schema(inline)]
    pub receipt: Receipt,
}

/// `POST /queue/{name}/ack` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskAcked {
    /// Human sentence.
    pub message: String,
    /// The receipt.
    pub receipt: String,
    /// The acked task.
    #[schema(value_type = serde_json::Value)]
    pub task: Box<RawValue>,
}
