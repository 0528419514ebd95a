/// Every failure of a broker operation, classified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// Not reachable, timed out, or not confirmed: the outcome is unknown;
    /// retry later.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker refused the message for good for where it goes (an
    /// unknown or forbidden topic, no route): others to the same place fail
    /// too until the broker is set up.
    #[error("message rejected: {0}")]
    Rejected(String),
    /// The broker refused this message itself for good (too large, an
    /// invalid record): sending it again fails again, while other messages
    /// to the same place may pass.
    #[error("message refused: {0}")]
    Refused(String),
    /// The URL is malformed or names an unknown scheme.
    #[error("invalid broker url: {0}")]
    InvalidUrl(String),
    /// The URL names a backend this build does not include.
    #[error(
        "broker backend {0:?} is not compiled into this build (enable the cargo feature {0:?})"
    )]
    BackendDisabled(&'static str),
    /// The topology on the broker differs from what sluice needs.
    #[error("topology mismatch: {0}")]
    Topology(String),
    /// The subscription has ended for good (its consumer stopped) and will
    /// deliver nothing more; its deliveries not yet acknowledged go to other
    /// consumers. Subscribe again, or stop.
    #[error("subscription closed: {0}")]
    Closed(String),
}

impl BrokerError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BrokerError::Unavailable(_))
    }
}
