//! Circuit breaker state shared by every worker process of a queue: one
//! process opens it, all of them pause, and exactly one runs the probe.

use async_trait::async_trait;
use sluice_core::EpochMs;

use crate::StoreError;

/// Where a queue's circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Jobs flow.
    Closed,
    /// Consumption paused until `until`; then one probe may be claimed.
    Open,
    /// One worker runs a probe job; the claim lapses at `until`.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`, as stored and shown by the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The inverse of [`CircuitState::as_str`].
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "closed" => Ok(Self::Closed),
            "open" => Ok(Self::Open),
            "half_open" => Ok(Self::HalfOpen),
            other => Err(StoreError::Corrupt(format!(
                "unknown circuit state {other:?}"
            ))),
        }
    }
}

/// A queue's recorded circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub queue: String,
    pub state: CircuitState,
    /// Open: when a probe may be claimed. Half-open: when the probe's claim
    /// lapses (its worker died), so another worker may claim it. Closed: none.
    pub until: Option<EpochMs>,
    /// When the state last changed.
    pub changed_at: EpochMs,
}

/// The breaker's shared record. A queue without a record is closed.
#[async_trait]
pub trait CircuitStore: Send + Sync {
    /// Opens the circuit of `queue` until `until`, unless it is open already
    /// (a second opening never extends the first). Returns whether this call
    /// opened it. A half-open circuit (a failed probe) opens again.
    async fn open_circuit(&self, queue: &str, until: EpochMs) -> Result<bool, StoreError>;

    /// Claims the one probe of `queue`: succeeds only when the circuit is
    /// open or half-open and its `until` has passed, and turns it half-open
    /// until `claim_until`. Of concurrent callers at most one gets `true`.
    async fn claim_probe(&self, queue: &str, claim_until: EpochMs) -> Result<bool, StoreError>;

    /// Closes the circuit of `queue` (a probe succeeded). Closing a closed
    /// circuit changes nothing.
    async fn close_circuit(&self, queue: &str) -> Result<(), StoreError>;

    /// Every recorded circuit that is not closed, by queue name.
    async fn circuits(&self) -> Result<Vec<Circuit>, StoreError>;
}
