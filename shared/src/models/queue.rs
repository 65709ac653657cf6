//! Bodies of the `queue` function.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

query_parameters! {
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

/// `GET /queue/{name}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskPopped {
    /// The oldest task, now removed.
    pub task: Value,
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
    pub tasks: Vec<Value>,
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
    pub tasks: Vec<Value>,
    /// As asked.
    pub offset: u64,
    /// As asked.
    pub limit: u64,
    /// Where the next page starts: `offset` plus the tasks in this one, which can be fewer
    /// than `limit` when their size reached the answer's byte budget.
    pub next_offset: u64,
}

/// `DELETE /queue/{name}` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueCleared {
    /// Human sentence.
    pub message: String,
    /// Tasks deleted, waiting and claimed.
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
}

fn default_visibility() -> u64 {
    VISIBILITY_SECS.default
}

/// `POST /queue/{name}/claim` answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskClaimed {
    /// The task, now in the processing list.
    pub task: Value,
    /// Pass it to `ack` once the task is done.
    pub receipt: String,
    /// When the claim lapses (Unix ms, Redis clock).
    pub visible_again_at_ms: u64,
    /// Tasks still waiting.
    pub remaining_tasks: u64,
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
    pub task: Value,
}
