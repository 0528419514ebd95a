use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CoreError;

/// The one stable identity of a job, from ingest to handler to dead letter to
/// replay. New jobs get a UUID v7 (time-ordered); jobs from direct producers
/// whose CloudEvents `id` is not a UUID get a UUID v5 derived from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(Uuid);

/// Namespace for derived (v5) job ids: a fixed, random UUID owned by sluice.
const SLUICE_NAMESPACE: Uuid = Uuid::from_u128(0x5c1a_1ce0_8d4b_4d3c_9f0e_2b6a_7c15_e001);

impl JobId {
    /// A new time-ordered UUID v7 id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id of a message from a direct producer: deterministic in
    /// `source` and `id`, so a re-sent message maps to the same job.
    pub fn derived(source: &str, id: &str) -> Self {
        let name = format!("{}\u{0}{}", source, id);
        Self(Uuid::new_v5(&SLUICE_NAMESPACE, name.as_bytes()))
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for JobId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl FromStr for JobId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| CoreError::InvalidId(s.chars().take(64).collect()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_ordered() {
        let a = JobId::new();
        let b = JobId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
    }

    #[test]
    fn derived_ids_are_stable_v5() {
        let a = JobId::derived("svc", "42");
        assert_eq!(a, JobId::derived("svc", "42"));
        assert_ne!(a, JobId::derived("svc", "43"));
        assert_ne!(JobId::derived("a", "bc"), JobId::derived("ab", "c"));
        assert_eq!(a.as_uuid().get_version_num(), 5);
    }

    #[test]
    fn parse_round_trip() {
        let a = JobId::new();
        assert_eq!(a.to_string().parse::<JobId>().unwrap(), a);
        assert!("nope".parse::<JobId>().is_err());
    }
}
