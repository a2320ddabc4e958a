//! The `tracing` events occ emits (feature `tracing`, target `occ`): a
//! version conflict, a lock that was not granted, each retry and a retry that
//! gave up. Without the feature these compile to nothing.

#[cfg(feature = "tracing")]
use core::time::Duration;

use crate::error::OccError;

/// A failure a caller may want to see in logs: conflicts and lock failures.
/// Other errors are the caller's to report.
pub(crate) fn failed(error: &OccError) {
    #[cfg(feature = "tracing")]
    if error.is_conflict() || error.is_lock_failure() {
        tracing::debug!(target: "occ", kind = error.kind(), "{error}");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}

#[cfg(feature = "tracing")]
pub(crate) fn retrying(attempt: u32, error: &OccError, pause: Duration) {
    tracing::debug!(
        target: "occ",
        attempt,
        kind = error.kind(),
        pause_ms = pause.as_secs_f64() * 1e3,
        "retrying the transaction after: {error}"
    );
}

#[cfg(not(feature = "tracing"))]
pub(crate) fn retrying(_: u32, _: &OccError, _: core::time::Duration) {}

pub(crate) fn gave_up(attempts: u32, error: &OccError) {
    #[cfg(feature = "tracing")]
    if error.is_retryable() || error.is_lock_failure() {
        tracing::warn!(
            target: "occ",
            attempts,
            kind = error.kind(),
            "gave up after {attempts} attempts: {error}"
        );
    }
    #[cfg(not(feature = "tracing"))]
    let _ = (attempts, error);
}
