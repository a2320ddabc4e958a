//! What occ needs from each backend's connection: transaction depth, a
//! transaction at an isolation level, the lock dialect and a lock timeout that
//! lasts one statement. One file per backend below; the rest of the runtime
//! sees only the traits here.

use core::num::NonZeroU32;
use core::time::Duration;

use diesel::connection::{LoadConnection, TransactionManager};
use diesel::Connection;

use crate::error::OccError;

#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "r2d2")]
mod pooled;
#[cfg(feature = "sqlite")]
mod sqlite;

/// How many transactions (the outermost and its savepoints) are open on `conn`,
/// as diesel's transaction manager counts them. A raw `BEGIN` sent as SQL is
/// not counted.
pub(crate) fn transaction_depth<C: Connection>(conn: &mut C) -> Result<u32, OccError> {
    let status = C::TransactionManager::transaction_manager_status_mut(conn);
    let depth = status.transaction_depth()?;
    Ok(depth.map_or(0, NonZeroU32::get))
}

/// A transaction isolation level for [`RetryPolicy::isolation`](crate::RetryPolicy::isolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ COMMITTED` (PostgreSQL's default).
    ReadCommitted,
    /// `REPEATABLE READ` (InnoDB's default; snapshot isolation on PostgreSQL).
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    fn sql(self) -> &'static str {
        match self {
            Self::ReadCommitted => "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Self::RepeatableRead => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            Self::Serializable => "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

/// Where a backend takes the isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationAt {
    /// As the transaction's first statement (PostgreSQL).
    First,
    /// Before the transaction starts; inside one it is refused (MySQL).
    Before,
    /// Nowhere: every transaction is serializable (SQLite), so any level
    /// asked for is met.
    Always,
}

/// Runs `body` in a new outermost transaction at `isolation` (the backend's
/// default when `None`), committing on `Ok` and rolling back on `Err`.
pub(crate) fn transaction_at<C, T>(
    conn: &mut C,
    isolation: Option<Isolation>,
    body: &mut dyn FnMut(&mut C) -> Result<T, OccError>,
) -> Result<T, OccError>
where
    C: OccConnection,
{
    let level = isolation.filter(|_| C::ISOLATION != IsolationAt::Always);
    if let (Some(level), IsolationAt::Before) = (level, C::ISOLATION) {
        conn.batch_execute(level.sql())?;
    }
    let mut body_succeeded = false;
    let result = conn.transaction(|conn| {
        if let (Some(level), IsolationAt::First) = (level, C::ISOLATION) {
            conn.batch_execute(level.sql())?;
        }
        let result = body(conn);
        body_succeeded = result.is_ok();
        result
    });
    let error = match result {
        Ok(value) => return Ok(value),
        // The body was done; the connection broke in COMMIT.
        Err(OccError::ConnectionBroken(e)) if body_succeeded => OccError::CommitOutcomeUnknown(e),
        Err(error) => error,
    };
    // Conflicts and the like are occ's reading of a clean result; only an
    // error from the server can leave a statement half-read.
    if error.database_error().is_some() {
        conn.after_failed_transaction();
    }
    match repair(conn) {
        Ok(()) => Err(error),
        // What the transaction's own error says stays the answer.
        Err(_)
            if matches!(
                error,
                OccError::ConnectionBroken(_)
                    | OccError::CommitOutcomeUnknown(_)
                    | OccError::NodeUnavailable(_)
            ) =>
        {
            Err(error)
        }
        Err(unrepaired) => Err(unrepaired),
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
pub(crate) fn repair<C: Connection>(conn: &mut C) -> Result<(), OccError> {
    let status = C::TransactionManager::transaction_manager_status_mut(conn);
    if status.transaction_depth().is_ok() {
        return Ok(());
    }
    if let Err(error) = conn.batch_execute("ROLLBACK") {
        if let Some(unusable) = crate::error::refused_rollback(error) {
            return Err(unusable);
        }
    }
    *C::TransactionManager::transaction_manager_status_mut(conn) = Default::default();
    Ok(())
}

/// Which SQL a row lock is written in. PostgreSQL has one; the MySQL backend
/// serves two dialects that disagree on shared locks (`FOR SHARE` on MySQL 8,
/// `LOCK IN SHARE MODE` on MariaDB), told apart at run time. Public in a
/// private module: the sealed traits name it, users cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Mysql,
    MariaDb,
}

/// A diesel connection occ runs transactions on: `SqliteConnection`,
/// `PgConnection` and `MysqlConnection`, as the enabled features allow.
/// Sealed: occ knows what each backend needs.
pub trait OccConnection: Connection + LoadConnection + sealed::Transactions {}

/// A connection whose backend has row locks: `PgConnection` and
/// `MysqlConnection` (MySQL 8 and MariaDB). Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no row locks",
    label = "row locks need a PostgreSQL or MySQL/MariaDB connection",
    note = "SQLite locks the whole database, not rows: run the read and the write in `conn.immediate_transaction(|conn| ..)`, which takes SQLite's write lock up front, or use a versioned write (`update_versioned`) instead"
)]
pub trait RowLocking: OccConnection + sealed::Locks {}

/// The hooks each backend implements. Public traits in a private module: they
/// bound the public traits above, but nobody outside can name or implement them.
pub(crate) mod sealed {
    use super::{Dialect, Duration, IsolationAt, OccError};

    pub trait Transactions {
        /// Where this backend takes `SET TRANSACTION ISOLATION LEVEL`.
        const ISOLATION: IsolationAt;

        /// Puts right what a failed transaction may have left behind on the
        /// client side, before the connection is used again.
        fn after_failed_transaction(&mut self) {}
    }

    /// A diesel backend with row locks, and the dialect its SQL is rendered
    /// in when no connection says otherwise.
    pub trait LockBackend: diesel::backend::Backend<QueryBuilder: Default> + Default {
        fn default_dialect() -> Dialect;
    }

    pub trait Locks {
        /// The dialect of this connection's server; `refresh` asks the server
        /// again instead of trusting what was seen before.
        fn dialect(&mut self, refresh: bool) -> Result<Dialect, OccError>;

        /// Sets the lock wait timeout for the next statement; returns what
        /// `restore_lock_timeout` needs.
        fn set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError>;

        /// Puts back the timeout saved by `set_lock_timeout`. `aborted` says
        /// the locking statement failed in the database, which on PostgreSQL
        /// leaves the transaction refusing every statement until rollback.
        fn restore_lock_timeout(&mut self, saved: String, aborted: bool) -> Result<(), OccError>;
    }
}
