//! The `tracing` events occ emits (feature `tracing`, target `occ`): a
//! version conflict, a lock that was not granted, each retry and a retry that
//! gave up, and a row that `modify` starts or stops locking. Without the
//! feature these compile to nothing.

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

/// A row became hot: `modify` queues its writers in the process from now
/// on, and locks it against writers of other processes.
pub(crate) fn heated(table: &str, key: &str, heat: f32) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "occ",
        table,
        key,
        heat,
        strategy = "queued",
        "{table} ({key}) is hot: modify queues its writers and locks it against others"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (table, key, heat);
}

/// A hot row cooled: `modify` reads it plainly again.
pub(crate) fn cooled(table: &str, key: &str, heat: f32) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "occ",
        table,
        key,
        heat,
        strategy = "optimistic",
        "{table} ({key}) cooled: modify reads it without a lock"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (table, key, heat);
}
