/// Every failure of a store operation, classified. Cloned for each of
/// several results failed by one cause.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or is overloaded: retry later (HTTP 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The `Idempotency-Key` was used before with a different request.
    #[error("idempotency key was already used with a different request")]
    IdempotencyConflict,
    /// The lease this change was fenced by is no longer held.
    #[error("lease lost: the job or row is leased by someone else or finished")]
    LeaseLost,
    /// No such job, row or dead letter.
    #[error("not found")]
    NotFound,
    /// The store URL is malformed or names an unknown scheme.
    #[error("invalid store url: {0}")]
    InvalidUrl(String),
    /// The URL names a backend this build does not include.
    #[error(
        "store backend {0:?} is not compiled into this build (enable the cargo feature {0:?})"
    )]
    BackendDisabled(&'static str),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A row could not be decoded (should not happen).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
