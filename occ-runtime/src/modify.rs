//! A read-modify-write that occ runs: read the row, let the caller change
//! it, write it versioned, and try again on a conflict; reading each row
//! plainly or under a lock as its temperature says.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::backend::sealed::Hooks;
use crate::error::{AsOccError, OccError};
use crate::exec::{Exec, Execute, Load};
use crate::model::Optimistic;
use crate::query::{
    find_statement, FindStatement, ForModify, UpdateReturning, UpdateStatement, VersionProbe,
};
use crate::retry::{refused, RetryPolicy};
use crate::temperature::{Path, RowId, Temperature};
use crate::trace::{self, Operation};
use crate::transaction::{transaction_from, Unfinished};
use crate::version::Version;
use crate::write;

/// How [`modify`](crate::OptimisticDsl::modify) reads a row before it
/// writes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Per row, from its [`Temperature`]: a plain read and a versioned
    /// write while the row is cold; while it is hot, the same behind the
    /// row's in-process queue (this process's writers of the row go to the
    /// database one at a time), and `FOR UPDATE` for an attempt that still
    /// conflicted there (a writer of another process). On SQLite, which has
    /// no row locks and one writer at a time, always the lock
    /// (`BEGIN IMMEDIATE`).
    #[default]
    Adaptive,
    /// Always a plain read and a versioned write; a conflict is retried.
    Optimistic,
    /// Always a lock first: `SELECT .. FOR UPDATE` on PostgreSQL and
    /// MySQL/MariaDB, `BEGIN IMMEDIATE` on SQLite. The write is still
    /// versioned, so writers that do not lock still conflict.
    Pessimistic,
}

impl Strategy {
    /// A stable name, for logs and metrics labels: `adaptive`,
    /// `optimistic`, `pessimistic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Adaptive => "adaptive",
            Self::Optimistic => "optimistic",
            Self::Pessimistic => "pessimistic",
        }
    }
}

/// How [`modify`](crate::OptimisticDsl::modify) runs: its [`Strategy`], the
/// [`RetryPolicy`] of its attempts, and the [`Temperature`] table that the
/// adaptive strategy reads and feeds.
///
/// The default: adaptive, the default retry policy, the process's
/// [`Temperature::global`] table.
#[derive(Debug, Clone, Default)]
pub struct ModifyPolicy {
    strategy: Strategy,
    retry: RetryPolicy,
    temperature: Option<Arc<Temperature>>,
}

impl ModifyPolicy {
    /// How each attempt reads the row.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// How often and when an attempt runs again: its attempts, backoff,
    /// isolation level and hook. Lock failures are retried only if it says
    /// so (`retry_lock_failures`). The isolation level is that of the locked
    /// attempts' transactions; a plain attempt is two statements of their
    /// own.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The table of row temperatures to read and feed instead of the
    /// process's global one: for a service that keeps the decisions of one
    /// part apart, or a test that looks at them.
    pub fn temperature(mut self, temperature: Arc<Temperature>) -> Self {
        self.temperature = Some(temperature);
        self
    }

    fn table(&self) -> &Temperature {
        self.temperature
            .as_deref()
            .unwrap_or_else(|| Temperature::global())
    }
}

/// What heats a row: an attempt that failed because another writer got
/// there first.
fn contended(error: &OccError) -> bool {
    matches!(
        error,
        OccError::Conflict { .. }
            | OccError::Deadlock(_)
            | OccError::LockTimeout(_)
            | OccError::LockNotAvailable(_)
            | OccError::SerializationFailure(_)
            | OccError::Busy(_)
    )
}

/// A locked read that took longer than this waited for its lock: half a
/// conflict's heat, so a row stays hot while its writers queue for it.
const WAITED_MS: u128 = 1;

/// The loop behind `modify`: the row read plainly or locked as the policy
/// and the row's temperature decide, the body applied, the row written
/// versioned. A locked attempt is its own transaction (opened by
/// `BEGIN IMMEDIATE` on SQLite); a plain one is the read and the write
/// alone. With `first` (`modify_from`: a row the caller read, from a
/// replica, say), the first attempt starts from it instead of a read, and
/// only the attempts after a conflict read, on `conn`.
pub(crate) async fn modify<M, K, C, DB, E, F>(
    conn: &mut C,
    key: M::Key,
    mut first: Option<M>,
    policy: &ModifyPolicy,
    body: F,
) -> Result<M, E>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: diesel::backend::Backend,
    C: Exec<K, Db: Hooks>,
    E: From<OccError> + AsOccError,
    F: FnMut(&mut M) -> Result<(), E>,
    FindStatement<M, DB>: Load<C, K, M>,
    FindStatement<M, DB, ForModify>: Load<C, K, M>,
    UpdateStatement<M, M::Changeset>: Execute<C, K>,
    UpdateReturning<M, M::Changeset>: Load<C, K, M::Version>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    let operation = Operation::modify::<C::Db>(M::TABLE_NAME, policy.strategy.name());
    operation
        .run(async {
            if let Some(error) = refused(conn).await {
                return Err(error.into());
            }
            let table = policy.table();
            let row = RowId::of::<M>(&key);
            let row_locks = <C::Db as Hooks>::BEGIN_TO_WRITE.is_none();
            // Handed to each attempt through a lock, which keeps the attempt's
            // future free of borrows from the closure that makes it.
            let body = Mutex::new(body);
            let mut attempt = 1;
            // Whether the last attempt conflicted in the row's queue: then the
            // conflict came from another process, and a lock settles it.
            let mut queued_conflict = false;
            loop {
                operation.attempt(attempt);
                let given = first.take();
                let (path, flight) = match policy.strategy {
                    _ if given.is_some() => (Path::Optimistic, None),
                    Strategy::Optimistic => (Path::Optimistic, None),
                    Strategy::Pessimistic => (Path::Locked, None),
                    Strategy::Adaptive if !row_locks => (Path::Locked, None),
                    Strategy::Adaptive => match table.decide(row) {
                        None => (Path::Optimistic, None),
                        Some(_) if queued_conflict => (Path::Locked, None),
                        Some(flight) => (Path::Queued, Some(flight)),
                    },
                };
                table.count(path);
                let locked = path == Path::Locked;
                let seat = match &flight {
                    Some(flight) => Some(C::board(flight).await),
                    None => None,
                };
                let begin = if locked {
                    <C::Db as Hooks>::BEGIN_TO_WRITE
                } else {
                    None
                };
                let lock_row = locked && row_locks;
                // Behind a lock for the same reason as the body.
                let given = Mutex::new(given);
                let mut once = async |conn: &mut C| {
                    let began = Instant::now();
                    let given = given.lock().map_or(None, |mut given| given.take());
                    let read = if let Some(row) = given {
                        Ok(Some(row))
                    } else if lock_row {
                        find_statement::<M, DB, _>(key.clone(), ForModify)
                            .load_first(conn)
                            .await
                    } else {
                        find_statement::<M, DB, _>(key.clone(), ())
                            .load_first(conn)
                            .await
                    };
                    let read_took = began.elapsed();
                    let mut row = read
                        .map_err(OccError::from)?
                        .ok_or_else(|| write::not_found::<M>(&key))?;
                    apply(&body, &mut row)?;
                    let next = row.version().next();
                    let changes = row.changeset();
                    let stored = write::update::<M, K, C, M::Changeset>(
                        conn,
                        key.clone(),
                        row.version(),
                        changes,
                        next,
                    )
                    .await?;
                    row.set_version(stored);
                    Ok::<_, E>((row, read_took))
                };
                let result = if locked {
                    transaction_from(conn, policy.retry.isolation_level(), begin, &mut once).await
                } else {
                    // A plain read and a versioned write need no transaction: the
                    // write's version check is what makes them safe, and the
                    // closure sees only the row. Two statements, as by hand.
                    let mut guard = Unfinished::<K, C>::new(conn);
                    let result = once(guard.conn()).await;
                    guard.done();
                    result
                };
                // Waited in the queue, or for the row lock.
                let waited = seat.is_some_and(|(_, waited)| waited)
                    || (lock_row
                        && matches!(&result, Ok((_, took)) if took.as_millis() > WAITED_MS));
                let result = result.map(|(row, _)| row);
                let adaptive = policy.strategy == Strategy::Adaptive && row_locks;
                let error = match result.as_ref().err().and_then(AsOccError::as_occ_error) {
                    None => {
                        if waited && adaptive {
                            table.heat(row, M::TABLE_NAME, 0.5, || M::describe_key(&key));
                        }
                        return result;
                    }
                    Some(error) => error,
                };
                if contended(error) && adaptive {
                    table.heat(row, M::TABLE_NAME, 1.0, || M::describe_key(&key));
                }
                queued_conflict = path == Path::Queued && contended(error);
                if !policy.retry.should_retry(error, attempt) {
                    trace::gave_up(&operation, attempt, error);
                    return result;
                }
                policy.retry.pause::<K, C>(&operation, attempt, error).await;
                attempt += 1;
            }
        })
        .await
}

/// Runs the caller's change on `row`.
fn apply<M, E, F>(body: &Mutex<F>, row: &mut M) -> Result<(), E>
where
    E: From<OccError>,
    F: FnMut(&mut M) -> Result<(), E>,
{
    let mut body = body.lock().map_err(|_| {
        OccError::Internal("modify's closure panicked in an earlier attempt".into())
    })?;
    (*body)(row)
}
