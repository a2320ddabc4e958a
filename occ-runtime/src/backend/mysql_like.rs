//! What MySQL and MariaDB share, for diesel's two backends of that family:
//! `diesel::mysql::Mysql` (which serves MySQL 8 and MariaDB servers, told
//! apart at run time, `backend/mysql.rs`) and diesel 2.4's own
//! `diesel::mariadb::Mariadb` (`backend/mariadb.rs`). InnoDB's lock wait
//! timeout, the session repair, and the SQL of lock clauses and of the
//! version probe's read.

use alloc::borrow::Cow;
use core::time::Duration;

use diesel::query_builder::{AstPass, QueryFragment};
use diesel::QueryResult;

use super::sealed::LockBackend;
use super::Dialect;
use crate::error::OccError;
use crate::exec::Exec;
use crate::lock::clause::RowLock;
use crate::lock::{AllTables, Exclusive, Shared, WaitPolicy};
use crate::query::{CurrentRead, ForModify};

/// A backend of the MySQL family. Sealed: implemented for diesel's MySQL and
/// MariaDB backends only.
pub trait MysqlLike: LockBackend {}

/// A lock interrupted between setting its timeout and putting it back (its
/// future dropped) leaves the session's timeout changed: a repair puts back
/// what was saved, if anything was.
pub(super) const RESET: &str = "SET SESSION innodb_lock_wait_timeout = CAST(\
     COALESCE(@occ_saved_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout) AS UNSIGNED), \
     @occ_saved_lock_wait_timeout = NULL";

/// A failed lock's error: MariaDB reports a failed NOWAIT as a lock wait
/// timeout (1205).
pub(super) fn lock_failure(dialect: Dialect, nowait: bool, error: OccError) -> OccError {
    if nowait && dialect == Dialect::MariaDb {
        error.nowait_failure()
    } else {
        error
    }
}

/// Sets InnoDB's lock wait timeout for the next statement. InnoDB counts
/// whole seconds: a timeout rounds up to the next second. The old value
/// waits in a session variable, so setting it costs one round trip and
/// restoring one more.
pub(super) async fn set_lock_timeout<K, C: Exec<K> + Send>(
    conn: &mut C,
    timeout: Duration,
) -> Result<String, OccError> {
    let seconds = timeout
        .as_nanos()
        .div_ceil(1_000_000_000)
        .clamp(1, 1_073_741_824);
    conn.batch(Cow::Owned(format!(
        "SET @occ_saved_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, \
         SESSION innodb_lock_wait_timeout = {seconds}"
    )))
    .await?;
    Ok(String::new())
}

/// Puts back the timeout [`set_lock_timeout`] saved. A lock wait timeout
/// rolls back only the statement (a deadlock the whole transaction): the
/// session stays usable and its variable must go back either way.
pub(super) async fn restore_lock_timeout<K, C: Exec<K> + Send>(
    conn: &mut C,
) -> Result<(), OccError> {
    conn.batch(Cow::Borrowed(
        "SET SESSION innodb_lock_wait_timeout = @occ_saved_lock_wait_timeout, \
         @occ_saved_lock_wait_timeout = NULL",
    ))
    .await?;
    Ok(())
}

/// The error number of each class occ tells apart, on a server of
/// `dialect`: MariaDB reports a failed `NOWAIT` as a lock wait timeout, and
/// the two time statements out with different numbers.
#[cfg(any(feature = "tracing", feature = "metrics"))]
pub(super) fn status_code(dialect: Dialect, error: &OccError) -> Option<&'static str> {
    use diesel::result::{DatabaseErrorKind, Error};
    let mariadb = dialect == Dialect::MariaDb;
    Some(match error {
        OccError::Deadlock(_) => "1213",
        OccError::LockTimeout(_) => "1205",
        OccError::LockNotAvailable(_) if mariadb => "1205",
        OccError::LockNotAvailable(_) => "3572",
        OccError::StatementTimeout(_) if mariadb => "1969",
        OccError::StatementTimeout(_) => "3024",
        OccError::NodeUnavailable(_) => "1047",
        OccError::ReadOnly(_) => "1290",
        OccError::Database(Error::DatabaseError(kind, _)) => match kind {
            DatabaseErrorKind::UniqueViolation => "1062",
            DatabaseErrorKind::NotNullViolation => "1048",
            _ => return None,
        },
        _ => return None,
    })
}

/// A strength MySQL and MariaDB can lock with.
#[diagnostic::on_unimplemented(
    message = "MySQL and MariaDB have no `{Self}` row lock",
    note = "MySQL and MariaDB lock rows with `.exclusive()` (FOR UPDATE) or `.shared()` (FOR SHARE / LOCK IN SHARE MODE)"
)]
pub trait MysqlStrength {
    fn sql(dialect: Dialect) -> &'static str;
}
impl MysqlStrength for Exclusive {
    fn sql(_: Dialect) -> &'static str {
        " FOR UPDATE"
    }
}
impl MysqlStrength for Shared {
    fn sql(dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::MariaDb => " LOCK IN SHARE MODE",
            _ => " FOR SHARE",
        }
    }
}

/// A version probe on MySQL and MariaDB reads the latest committed row
/// (`LOCK IN SHARE MODE`, which both accept): InnoDB's plain `SELECT` inside
/// a `REPEATABLE READ` transaction returns the snapshot, which would report
/// the version the failed write expected, or a row already deleted.
/// `FOR UPDATE` is spelled alike by MySQL 8 and MariaDB.
impl<DB: MysqlLike> QueryFragment<DB> for ForModify {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(" FOR UPDATE");
        Ok(())
    }
}

impl<DB: MysqlLike> QueryFragment<DB> for CurrentRead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(" LOCK IN SHARE MODE");
        Ok(())
    }
}

impl<S, W, DB> QueryFragment<DB> for RowLock<S, W, AllTables>
where
    S: MysqlStrength,
    W: WaitPolicy,
    DB: MysqlLike,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(S::sql(self.dialect));
        out.push_sql(W::SQL);
        Ok(())
    }
}
