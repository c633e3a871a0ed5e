//! Rows as the engine reads them back: runs, steps and audit events.

use crate::status::{RunStatus, StepStatus, TriggerKind};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// A run as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: Uuid,
    pub pipeline: String,
    /// What the run acts on; `""` for pipelines without subjects.
    pub subject: String,
    pub status: RunStatus,
    pub trigger: TriggerKind,
    pub params: Value,
    pub requested_by: String,
    pub current_step: i32,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub outcome: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A step of a run as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct StepRecord {
    pub run_id: Uuid,
    pub position: i32,
    pub name: String,
    pub status: StepStatus,
    pub attempt: i32,
    pub max_attempts: i32,
    pub retry_base: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub last_error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// One line of a run's append-only history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunEvent {
    pub id: i64,
    pub run_id: Uuid,
    /// `None` for an event of the run itself.
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: Option<String>,
    pub detail: Option<Value>,
    pub at: DateTime<Utc>,
}

/// A run with its steps (in order) and its history (oldest first).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub steps: Vec<StepRecord>,
    pub events: Vec<RunEvent>,
}

/// The result of asking for a run: a new one, or the one already active.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(Run),
    AlreadyActive(Run),
}

impl Created {
    pub fn run(&self) -> &Run {
        match self {
            Self::New(run) | Self::AlreadyActive(run) => run,
        }
    }

    pub fn is_new(&self) -> bool {
        matches!(self, Self::New(_))
    }
}
