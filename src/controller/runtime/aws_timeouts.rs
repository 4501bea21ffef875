//! How long the controller waits for AWS. The SDK's default is to wait forever for a response;
//! one endpoint that accepts connections and never answers would then hold a reconcile slot for
//! good, and with it everything queued behind it. Every KMS, Roles Anywhere and IAM client is
//! built from the SDK configuration these bounds are set on.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;

/// Establishing a connection (TCP and TLS).
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// From sending a request to the first byte of its response.
pub const AWS_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// One attempt of an operation, response body included.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// A whole operation, its retries (with the SDK's jittered backoff) included.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The bounds of every AWS call the controller makes.
pub fn aws_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .read_timeout(AWS_READ_TIMEOUT)
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(AWS_OPERATION_TIMEOUT)
        .build()
}
