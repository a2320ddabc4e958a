//! Run a transaction again when the database says trying again can succeed.

use core::fmt;
use core::future::ready;
#[cfg(feature = "async")]
use core::future::Future;
use core::time::Duration;
use std::sync::Arc;

use crate::backend::sealed::Hooks;
use crate::backend::{Isolation, OccConnection};
use crate::error::{AsOccError, OccError};
use crate::exec::{block_on, depth, Blocking, Exec};
use crate::trace::{self, Operation};
use crate::transaction::{random_u64, repair, transaction_at, Attempt};

type RetryHook = Arc<dyn Fn(u32, &OccError) + Send + Sync>;

/// When and how often [`retry`] runs a transaction again.
///
/// The default: 20 attempts, backoff from 2 ms doubling up to 200 ms with full
/// jitter, retrying [`OccError::is_retryable`] errors but not lock failures, at
/// the backend's default isolation level.
#[derive(Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    retry_lock_failures: bool,
    isolation: Option<Isolation>,
    on_retry: Option<RetryHook>,
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("retry_lock_failures", &self.retry_lock_failures)
            .field("isolation", &self.isolation)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(200),
            retry_lock_failures: false,
            isolation: None,
            on_retry: None,
        }
    }
}

impl RetryPolicy {
    /// How many attempts the default policy makes. Six writers racing on
    /// one row of a 3-node Galera cluster needed up to 17 for one operation
    /// (0.2-0.7% of operations needed more than 10); a single server needs
    /// fewer. The pauses between 20 attempts add up to 1.3 s on average and
    /// 2.7 s at most.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

    /// How many times the transaction runs at most, the first included
    /// (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The longest pause before the first retry; each further retry doubles it,
    /// up to [`max_backoff`](Self::max_backoff). The pause is drawn at random
    /// between zero and that bound, so racing writers spread out.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The bound on one pause between attempts.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Also retry [`OccError::LockNotAvailable`] and [`OccError::LockTimeout`]
    /// (off by default: with `NOWAIT` or a timeout a caller usually wants to
    /// do something else than wait again).
    pub fn retry_lock_failures(mut self, retry: bool) -> Self {
        self.retry_lock_failures = retry;
        self
    }

    /// Run each attempt at this isolation level. PostgreSQL and MySQL/MariaDB
    /// set it per transaction; SQLite's transactions are always serializable.
    /// Under `RepeatableRead` and `Serializable`, PostgreSQL reports concurrent
    /// writes as [`OccError::SerializationFailure`], which is retried.
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Calls `hook` before each retry with the number of the attempt that
    /// failed (1 for the first) and its error: for logs and metrics
    /// (`error.kind()` is a stable label). With the `tracing` feature occ also
    /// emits a `DEBUG` event per retry on target `occ`.
    pub fn on_retry(mut self, hook: impl Fn(u32, &OccError) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// Whether `error`, after `attempt` attempts, is worth another one.
    pub fn should_retry(&self, error: &OccError, attempt: u32) -> bool {
        attempt < self.max_attempts
            && (error.is_retryable() || (self.retry_lock_failures && error.is_lock_failure()))
    }

    /// The pause after attempt `attempt` (1-based): random in
    /// `[0, min(max_backoff, initial_backoff * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubling = 1u32
            .checked_shl(attempt.saturating_sub(1).min(31))
            .unwrap_or(u32::MAX);
        let bound = self
            .initial_backoff
            .saturating_mul(doubling)
            .min(self.max_backoff);
        let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(random_u64() % (nanos + 1))
    }
}

/// Runs `body` in its own top-level transaction, commits on `Ok`, rolls back on
/// `Err`, and runs it again for errors that another attempt can get past
/// ([`OccError::is_retryable`], and lock failures if the policy says so), up to
/// the policy's attempts; then returns the last error.
///
/// **`body` must read everything it uses on every attempt.** A value read
/// before `retry`, or kept from an earlier attempt, is what the conflict was
/// about: writing it back again just fails again, or under a lock writes stale
/// data. Load, lock, decide and write inside the closure.
///
/// Called inside an open transaction, it returns
/// [`OccError::RetryInsideTransaction`] without running `body`: after an error
/// PostgreSQL refuses every further statement of the transaction, and InnoDB
/// rolls it back whole on a deadlock, so only the outermost transaction can
/// be tried again.
///
/// `body` may return the caller's own error type `E` instead of
/// [`OccError`]: one that converts from `OccError` and gives it back through
/// [`AsOccError`]. The policy decides from the `OccError` inside; an error of
/// the caller's own (`AppError::InsufficientStock`) rolls the transaction back,
/// ends the retry at once and comes back unchanged.
///
/// See the `occ` crate's documentation for an example; [`retry_counted`] also
/// says how many attempts it took.
pub fn retry<C, T, E, F>(conn: &mut C, policy: &RetryPolicy, body: F) -> Result<T, E>
where
    C: OccConnection,
    E: From<OccError> + AsOccError,
    F: FnMut(&mut C) -> Result<T, E>,
{
    retry_counted(conn, policy, body).result
}

/// What [`retry_counted`] returns: the outcome, and how many times the
/// transaction ran.
#[derive(Debug)]
#[non_exhaustive]
pub struct Retried<T, E = OccError> {
    /// The last attempt's outcome.
    pub result: Result<T, E>,
    /// How many attempts ran: 1 when the first one settled it, 0 when none
    /// could start ([`OccError::RetryInsideTransaction`]).
    pub attempts: u32,
}

/// [`retry`], also reporting how many attempts the call took.
pub fn retry_counted<C, T, E, F>(conn: &mut C, policy: &RetryPolicy, mut body: F) -> Retried<T, E>
where
    C: OccConnection,
    E: From<OccError> + AsOccError,
    F: FnMut(&mut C) -> Result<T, E>,
{
    block_on(attempts::<Blocking, C, T, E, _>(
        conn,
        policy,
        |conn: &mut C| ready(body(conn)),
    ))
}

/// The loop behind [`retry`] and `retry_async`: each attempt its own
/// transaction, a pause between attempts.
pub(crate) async fn attempts<K, C, T, E, B>(
    conn: &mut C,
    policy: &RetryPolicy,
    mut body: B,
) -> Retried<T, E>
where
    C: Exec<K, Db: Hooks>,
    E: From<OccError> + AsOccError,
    B: for<'c> Attempt<&'c mut C, Result<T, E>>,
{
    let operation = Operation::retry::<C::Db>();
    let retried = operation
        .enter(async {
            if let Some(error) = refused(conn).await {
                return Retried {
                    result: Err(error.into()),
                    attempts: 0,
                };
            }
            let mut attempt = 1;
            loop {
                operation.attempt(attempt);
                let result = transaction_at(conn, policy.isolation, &mut body).await;
                match result.as_ref().err().and_then(AsOccError::as_occ_error) {
                    Some(error) if policy.should_retry(error, attempt) => {
                        policy.pause::<K, C>(&operation, attempt, error).await;
                        attempt += 1;
                    }
                    occ => {
                        if let Some(error) = occ {
                            trace::gave_up(&operation, attempt, error);
                        }
                        return Retried {
                            result,
                            attempts: attempt,
                        };
                    }
                }
            }
        })
        .await;
    operation.finish(retried.result.as_ref().err());
    retried
}

/// Why a retrying call cannot start on `conn`: an open transaction, or a
/// connection a failed one left refused that cannot be repaired.
pub(crate) async fn refused<K, C>(conn: &mut C) -> Option<OccError>
where
    C: Exec<K, Db: Hooks>,
{
    match depth(conn) {
        Ok(0) => None,
        Ok(depth) => Some(OccError::RetryInsideTransaction { depth }),
        // A transaction that failed earlier, or was interrupted, left the
        // connection refused: repair it if the server allows.
        Err(_) => repair(conn).await.err(),
    }
}

impl RetryPolicy {
    /// What happens between attempt `attempt`, which failed with `error`,
    /// and the next: the trace event, the hook, and the pause.
    pub(crate) async fn pause<K, C: Exec<K>>(
        &self,
        operation: &Operation,
        attempt: u32,
        error: &OccError,
    ) {
        let pause = self.backoff(attempt);
        trace::retrying(operation, attempt, error, pause);
        if let Some(hook) = &self.on_retry {
            hook(attempt, error);
        }
        C::pause(pause).await;
    }

    /// The isolation level each attempt runs at, if the policy sets one.
    pub(crate) fn isolation_level(&self) -> Option<Isolation> {
        self.isolation
    }
}

/// [`retry`] on a diesel-async connection, with the caller's own error type
/// allowed as there: `body` is an async closure
/// (`async |conn| { .. }`), called once per attempt, each attempt its own
/// top-level transaction, with the same policy and the same refusal inside a
/// transaction. The future is `Send` when the body's is: it can be spawned
/// and awaited in a web handler.
///
/// The body's future may borrow what the closure borrows, and the
/// connection, but not the closure's own captures: an `async move` closure
/// that owns a value and uses it by reference is refused; clone the value
/// inside, or capture a reference.
///
/// A future dropped part-way (a timeout around it) leaves the connection's
/// transaction manager failed, never an open transaction for its next user:
/// diesel-async's pools discard such a connection, and occ's next
/// transaction on it rolls back and resets it first.
#[cfg(feature = "async")]
#[allow(clippy::manual_async_fn)] // An `async fn` could not promise `Send`.
pub fn retry_async<'a, C, T, E, F>(
    conn: &'a mut C,
    policy: &'a RetryPolicy,
    body: F,
) -> impl Future<Output = Result<T, E>> + Send + 'a
where
    C: crate::backend::AsyncOccConnection,
    T: Send + 'a,
    E: From<OccError> + AsOccError + Send + 'a,
    F: for<'c> AsyncFnMut(&'c mut C) -> Result<T, E>
        + for<'c> Attempt<&'c mut C, Result<T, E>, Fut: Send>
        + Send
        + 'a,
{
    async move { retry_counted_async(conn, policy, body).await.result }
}

/// [`retry_async`], also reporting how many attempts the call took.
#[cfg(feature = "async")]
pub fn retry_counted_async<'a, C, T, E, F>(
    conn: &'a mut C,
    policy: &'a RetryPolicy,
    body: F,
) -> impl Future<Output = Retried<T, E>> + Send + 'a
where
    C: crate::backend::AsyncOccConnection,
    T: Send + 'a,
    E: From<OccError> + AsOccError + Send + 'a,
    F: for<'c> AsyncFnMut(&'c mut C) -> Result<T, E>
        + for<'c> Attempt<&'c mut C, Result<T, E>, Fut: Send>
        + Send
        + 'a,
{
    attempts::<crate::exec::NonBlocking, C, T, E, F>(conn, policy, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_bound() {
        let policy = RetryPolicy::default()
            .initial_backoff(Duration::from_millis(4))
            .max_backoff(Duration::from_millis(20));
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(4));
            assert!(policy.backoff(2) <= Duration::from_millis(8));
            assert!(policy.backoff(40) <= Duration::from_millis(20));
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(spread.len() > 10, "jitter should spread pauses: {spread:?}");
    }

    #[test]
    fn lock_failures_need_opting_in() {
        let timeout = OccError::LockTimeout(diesel::result::Error::NotFound);
        assert!(!RetryPolicy::default().should_retry(&timeout, 1));
        assert!(RetryPolicy::default()
            .retry_lock_failures(true)
            .should_retry(&timeout, 1));
        let deadlock = OccError::Deadlock(diesel::result::Error::NotFound);
        assert!(RetryPolicy::default().should_retry(&deadlock, 19));
        assert!(!RetryPolicy::default().should_retry(&deadlock, 20));
    }
}
