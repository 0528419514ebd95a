use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The public status of a job.
///
/// `pending`: durable in the outbox, not yet on the broker. `published`: on the
/// broker or being worked on. `retrying`: an attempt failed and the job waits in
/// the outbox for its backoff. `succeeded` and `dead` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Published,
    Retrying,
    Succeeded,
    Dead,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Published,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Dead,
    ];

    /// The wire and column name.
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Published => "published",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
        }
    }

    /// Whether no further attempt will happen (until a replay).
    pub fn is_final(&self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Dead)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}
