/// Errors of the core crate: invalid configuration values and undecodable messages.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CoreError {
    /// A retry policy value makes no sense (for example `multiplier < 1`).
    #[error("invalid retry policy: {0}")]
    InvalidPolicy(String),
    /// Another configuration value is out of range or malformed; the caller
    /// names its key.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// A broker message could not be turned into a job envelope.
    #[error("undecodable message: {0}")]
    Decode(String),
    /// A string is not a job id.
    #[error("invalid job id: {0}")]
    InvalidId(String),
}
