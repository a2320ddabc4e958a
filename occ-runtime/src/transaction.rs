//! A transaction at an isolation level, and the repair of a connection a
//! failed or interrupted one left refused: written once for every kind of
//! connection.

use core::future::Future;
use core::marker::PhantomData;

use diesel::connection::{TransactionDepthChange, TransactionManagerStatus};
use diesel::result::Error as DieselError;

use crate::backend::sealed::Hooks;
use crate::backend::{Isolation, IsolationAt};
use crate::error::{AsOccError, OccError};
use crate::exec::{Exec, TextQuery};

/// Std's `RandomState` is seeded per instance from the OS: enough for
/// jitter and a nonce, without a dependency.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

/// Marks the connection's transaction manager as failed if dropped before
/// [`done`](Self::done): a future dropped between `SET TRANSACTION` and
/// `COMMIT` (a timeout around it, a task aborted) leaves a transaction open
/// or a setting pending, and a pool must not hand that connection to its next
/// user. diesel-async's pools discard a connection whose manager failed; occ's
/// own next transaction on it repairs it first.
pub(crate) struct Unfinished<'c, K, C: Exec<K>> {
    conn: &'c mut C,
    done: bool,
    kind: PhantomData<fn() -> K>,
}

impl<'c, K, C: Exec<K>> Unfinished<'c, K, C> {
    pub(crate) fn new(conn: &'c mut C) -> Self {
        Self {
            conn,
            done: false,
            kind: PhantomData,
        }
    }

    /// The connection, to work on while guarded.
    pub(crate) fn conn(&mut self) -> &mut C {
        self.conn
    }

    /// The work is done: nothing to mark.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl<K, C: Exec<K>> Drop for Unfinished<'_, K, C> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.status().set_in_error();
        }
    }
}

/// A transaction's body, called once per attempt: a closure taking the
/// connection and returning a future (an async closure whose future borrows
/// nothing from the closure itself, or `|conn| async move { .. }`). Naming
/// the future lets [`retry_async`](crate::retry_async) require it to be
/// `Send`. Implemented for every such closure; a bound, not a trait to
/// implement.
pub trait Attempt<A, R>: FnMut(A) -> <Self as Attempt<A, R>>::Fut {
    /// The future one call returns.
    type Fut: Future<Output = R>;
    #[doc(hidden)]
    fn attempt(&mut self, arg: A) -> Self::Fut;
}

impl<F, A, Fut, R> Attempt<A, R> for F
where
    F: FnMut(A) -> Fut,
    Fut: Future<Output = R>,
{
    type Fut = Fut;
    fn attempt(&mut self, arg: A) -> Fut {
        self(arg)
    }
}

#[cfg(feature = "async")]
/// Runs one versioned write or reload of the async API: on a connection an
/// interrupted call marked, only after repairing it; and marked itself if
/// dropped half-way, so that no later statement reads its reply.
pub(crate) async fn step<K, C, T>(
    conn: &mut C,
    write: impl AsyncFnOnce(&mut C) -> Result<T, OccError>,
) -> Result<T, OccError>
where
    C: Exec<K, Db: Hooks>,
{
    // Nothing to do, and nothing sent, on a connection in order.
    repair(conn).await?;
    let mut guard = Unfinished::<K, C>::new(conn);
    let result = write(guard.conn()).await;
    guard.done();
    result
}

/// Runs `body` in a new outermost transaction at `isolation` (the backend's
/// default when `None`), committing on `Ok` and rolling back on `Err`.
///
/// The body's error may be the caller's own `E`: it ends the transaction
/// like any error and comes back unchanged.
pub(crate) async fn transaction_at<K, C, T, E, B>(
    conn: &mut C,
    isolation: Option<Isolation>,
    body: &mut B,
) -> Result<T, E>
where
    C: Exec<K, Db: Hooks>,
    E: From<OccError> + AsOccError,
    B: for<'c> Attempt<&'c mut C, Result<T, E>>,
{
    transaction_from(conn, isolation, None, body).await
}

/// [`transaction_at`], opened by `begin` (SQLite's `BEGIN IMMEDIATE`)
/// instead of diesel's `BEGIN` when given.
pub(crate) async fn transaction_from<K, C, T, E, B>(
    conn: &mut C,
    isolation: Option<Isolation>,
    begin: Option<&'static str>,
    body: &mut B,
) -> Result<T, E>
where
    C: Exec<K, Db: Hooks>,
    E: From<OccError> + AsOccError,
    B: for<'c> Attempt<&'c mut C, Result<T, E>>,
{
    let mut guard = Unfinished::<K, C>::new(conn);
    let result = run(guard.conn(), isolation, begin, body).await;
    guard.done();
    let error = match result {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    // Conflicts and the like are occ's reading of a clean result; only an
    // error from the server can leave a statement half-read.
    let occ = error.as_occ_error();
    if occ.is_some_and(|e| e.database_error().is_some()) {
        conn.after_failed_transaction();
    }
    match repair(conn).await {
        Ok(()) => Err(error),
        // What the transaction's own error says stays the answer.
        Err(_)
            if matches!(
                error.as_occ_error(),
                Some(
                    OccError::ConnectionBroken(_)
                        | OccError::CommitOutcomeUnknown(_)
                        | OccError::NodeUnavailable(_)
                        | OccError::ReadOnly(_)
                )
            ) =>
        {
            Err(error)
        }
        Err(unrepaired) => Err(unrepaired.into()),
    }
}

/// Runs `body` in a savepoint of the open transaction, released on `Ok` and
/// rolled back to on `Err`.
pub(crate) async fn nested<K, C, T, B>(conn: &mut C, body: &mut B) -> Result<T, OccError>
where
    C: Exec<K, Db: Hooks>,
    B: for<'c> Attempt<&'c mut C, Result<T, OccError>>,
{
    run(conn, None, None, body).await
}

/// `BEGIN`, the body, `COMMIT` or `ROLLBACK`: what diesel's own
/// `transaction` does, with the isolation level where the backend takes it.
async fn run<K, C, T, E, B>(
    conn: &mut C,
    isolation: Option<Isolation>,
    begin: Option<&'static str>,
    body: &mut B,
) -> Result<T, E>
where
    C: Exec<K, Db: Hooks>,
    E: From<OccError>,
    B: for<'c> Attempt<&'c mut C, Result<T, E>>,
{
    let at = <C::Db as Hooks>::ISOLATION;
    let level = isolation.filter(|_| at != IsolationAt::Always);
    if let (Some(level), IsolationAt::Before) = (level, at) {
        conn.batch(level.sql().into())
            .await
            .map_err(OccError::from)?;
    }
    match begin {
        Some(sql) => begin_with(conn, sql).await,
        None => conn.begin().await,
    }
    .map_err(OccError::from)?;
    let result = match (level, at) {
        (Some(level), IsolationAt::First) => match conn.batch(level.sql().into()).await {
            Ok(()) => body.attempt(conn).await,
            Err(error) => Err(OccError::from(error).into()),
        },
        _ => body.attempt(conn).await,
    };
    match result {
        Ok(value) => match conn.commit().await {
            Ok(()) => Ok(value),
            // The body was done; the connection broke in COMMIT, or the
            // cluster node left the primary component while committing: its
            // write set may already have been applied by the others (seen in
            // tests/galera.rs: an increment in the row that its writer was
            // told had failed).
            Err(error) => Err(match OccError::from(error) {
                OccError::ConnectionBroken(e) | OccError::NodeUnavailable(e) => {
                    OccError::CommitOutcomeUnknown(e)
                }
                other => other,
            }
            .into()),
        },
        Err(error) => match conn.rollback().await {
            Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(OccError::from(rollback).into()),
        },
    }
}

/// Opens the outermost transaction with `sql` instead of `BEGIN`, and counts
/// it as diesel's own `begin_transaction_sql` does, so that diesel's
/// `COMMIT`, `ROLLBACK` and savepoints follow as for any transaction.
async fn begin_with<K, C: Exec<K>>(conn: &mut C, sql: &'static str) -> Result<(), DieselError> {
    if conn.status().transaction_depth()?.is_some() {
        return Err(DieselError::AlreadyInTransaction);
    }
    conn.batch(sql.into()).await?;
    match conn.status() {
        TransactionManagerStatus::Valid(valid) => {
            valid.change_transaction_depth(TransactionDepthChange::IncreaseDepth)
        }
        TransactionManagerStatus::InError => Err(DieselError::BrokenTransactionManager),
    }
}

/// After a transaction whose rollback failed, diesel refuses every further
/// transaction on the connection (`BrokenTransactionManager`). The server
/// may well have ended the transaction itself: Galera aborts a local
/// transaction that a replicated write conflicts with, and then answers the
/// ROLLBACK with 1213. One more ROLLBACK tells: if the server accepts it, no
/// transaction is open and the connection is as good as new. If not, the
/// connection stays refused and the error says why: `NodeUnavailable` (a
/// later call repairs it once the node serves again) or `ConnectionBroken`.
/// A transaction interrupted half-way (see [`Unfinished`]) is repaired the
/// same way, with the backend's session settings put back.
///
/// An interrupted call may also have left a reply unread: on MySQL, the
/// next statement would read the previous one's reply. A query whose answer
/// only this call knows tells: a connection whose replies are out of step is
/// `ConnectionBroken`, to be replaced.
pub(crate) async fn repair<K, C>(conn: &mut C) -> Result<(), OccError>
where
    C: Exec<K, Db: Hooks>,
{
    if conn.status().transaction_depth().is_ok() {
        return Ok(());
    }
    let nonce = format!("occ{}", random_u64());
    let out_of_step = |cause: String| {
        OccError::ConnectionBroken(DieselError::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new(format!(
                "the connection's replies are out of step after an interrupted call ({cause})"
            )),
        ))
    };
    match conn
        .text(TextQuery::new(format!("SELECT '{nonce}' AS occ_text")))
        .await
    {
        Ok(Some(answer)) if answer == nonce => {}
        Ok(answer) => return Err(out_of_step(format!("read {answer:?}"))),
        // An error the server sent is an answer in step (Galera may still
        // refuse statements of the transaction it aborted); a connection
        // that is gone says so.
        Err(error @ DieselError::DatabaseError(..)) => {
            let error = OccError::from(error);
            if matches!(
                error,
                OccError::ConnectionBroken(_) | OccError::NodeUnavailable(_)
            ) {
                return Err(error);
            }
        }
        // A reply that is not this query's (rows of another shape).
        Err(error) => return Err(out_of_step(error.to_string())),
    }
    if let Err(error) = conn.batch("ROLLBACK".into()).await {
        if let Some(unusable) = crate::error::refused_rollback(error) {
            return Err(unusable);
        }
    }
    if let Some(reset) = <C::Db as Hooks>::RESET {
        conn.batch(reset.into()).await?;
    }
    *conn.status() = Default::default();
    Ok(())
}
