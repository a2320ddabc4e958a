//! What occ needs to know about each backend's connection: transaction depth,
//! isolation levels, lock timeouts and the MySQL/MariaDB dialect.

use core::num::NonZeroU32;
use core::time::Duration;

use diesel::connection::{LoadConnection, TransactionManager};
use diesel::Connection;

use crate::error::OccError;

/// How many transactions (the outermost and its savepoints) are open on `conn`,
/// as diesel's transaction manager counts them. A raw `BEGIN` sent as SQL is
/// not counted.
pub fn transaction_depth<C: Connection>(conn: &mut C) -> Result<u32, OccError> {
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
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    fn sql(self) -> &'static str {
        match self {
            Self::ReadCommitted => "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Self::RepeatableRead => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            Self::Serializable => "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

/// Which SQL a row lock is written in. PostgreSQL has one; the MySQL backend
/// serves two dialects that disagree on shared locks (`FOR SHARE` on MySQL 8,
/// `LOCK IN SHARE MODE` on MariaDB), told apart at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL (and the engines that speak its locking SQL).
    Postgres,
    /// MySQL 8 and later.
    Mysql,
    /// MariaDB.
    MariaDb,
}

/// A diesel connection occ can run transactions on: SQLite, PostgreSQL and
/// MySQL/MariaDB connections.
pub trait OccConnection: Connection + LoadConnection {
    /// Runs `body` in a new outermost transaction at `isolation` (the backend's
    /// default when `None`), committing on `Ok` and rolling back on `Err`.
    #[doc(hidden)]
    fn __occ_transaction<T>(
        &mut self,
        isolation: Option<Isolation>,
        body: &mut dyn FnMut(&mut Self) -> Result<T, OccError>,
    ) -> Result<T, OccError>;
}

/// A connection whose backend has row locks: PostgreSQL and MySQL/MariaDB.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no row locks",
    label = "row locks need a PostgreSQL or MySQL/MariaDB connection",
    note = "SQLite locks the whole database, not rows: run the read and the write in `conn.immediate_transaction(|conn| ..)`, which takes SQLite's write lock up front, or use a versioned write (`update_versioned`) instead"
)]
pub trait RowLocking: OccConnection {
    /// The dialect of this connection's server.
    #[doc(hidden)]
    fn __occ_dialect(&mut self, refresh: bool) -> Result<Dialect, OccError>;

    /// Sets the lock wait timeout for the next statement; returns what to
    /// pass to `__occ_restore_lock_timeout`.
    #[doc(hidden)]
    fn __occ_set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError>;

    /// Puts back the timeout saved by `__occ_set_lock_timeout`. `failed` says
    /// the locking statement failed.
    #[doc(hidden)]
    fn __occ_restore_lock_timeout(&mut self, saved: String, failed: bool) -> Result<(), OccError>;
}

#[cfg(feature = "sqlite")]
impl OccConnection for diesel::SqliteConnection {
    // Every SQLite transaction is serializable: any requested level is met.
    fn __occ_transaction<T>(
        &mut self,
        _isolation: Option<Isolation>,
        body: &mut dyn FnMut(&mut Self) -> Result<T, OccError>,
    ) -> Result<T, OccError> {
        self.transaction(|conn| body(conn))
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;
    use diesel::{Connection, PgConnection, RunQueryDsl};

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        old: String,
    }

    impl OccConnection for PgConnection {
        // PostgreSQL takes the level as the transaction's first statement.
        fn __occ_transaction<T>(
            &mut self,
            isolation: Option<Isolation>,
            body: &mut dyn FnMut(&mut Self) -> Result<T, OccError>,
        ) -> Result<T, OccError> {
            self.transaction(|conn| {
                if let Some(level) = isolation {
                    conn.batch_execute(level.sql())?;
                }
                body(conn)
            })
        }
    }

    impl RowLocking for PgConnection {
        fn __occ_dialect(&mut self, _refresh: bool) -> Result<Dialect, OccError> {
            Ok(Dialect::Postgres)
        }

        // One round trip reads the old value and sets the new one, local to the
        // transaction. PostgreSQL evaluates the select list left to right.
        fn __occ_set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError> {
            // 0 would mean "no timeout": the shortest real wait is 1 ms.
            let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
            let setting = diesel::sql_query(
                "SELECT current_setting('lock_timeout') AS old, \
                 set_config('lock_timeout', $1, true) AS new",
            )
            .bind::<Text, _>(format!("{millis}ms"))
            .get_result::<Setting>(self)?;
            Ok(setting.old)
        }

        // After a failure the transaction is aborted and refuses every
        // statement; its rollback discards the local setting anyway.
        fn __occ_restore_lock_timeout(
            &mut self,
            saved: String,
            failed: bool,
        ) -> Result<(), OccError> {
            if !failed {
                diesel::sql_query("SELECT set_config('lock_timeout', $1, true)")
                    .bind::<Text, _>(saved)
                    .execute(self)?;
            }
            Ok(())
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use core::sync::atomic::{AtomicU8, Ordering};

    use diesel::connection::SimpleConnection;
    use diesel::sql_types::Text;
    use diesel::{Connection, MysqlConnection, RunQueryDsl};

    use super::*;

    /// The dialect last seen on a MySQL-backend connection: 0 unknown, 1 MySQL,
    /// 2 MariaDB. A process talks to one kind of server in the common case; a
    /// lock statement that the server rejects as a syntax error refreshes it.
    static LAST_DIALECT: AtomicU8 = AtomicU8::new(0);

    impl OccConnection for MysqlConnection {
        // MySQL sets the level of the next transaction before it starts; inside
        // one it refuses.
        fn __occ_transaction<T>(
            &mut self,
            isolation: Option<Isolation>,
            body: &mut dyn FnMut(&mut Self) -> Result<T, OccError>,
        ) -> Result<T, OccError> {
            if let Some(level) = isolation {
                self.batch_execute(level.sql())?;
            }
            self.transaction(|conn| body(conn))
        }
    }

    impl RowLocking for MysqlConnection {
        fn __occ_dialect(&mut self, refresh: bool) -> Result<Dialect, OccError> {
            match LAST_DIALECT.load(Ordering::Relaxed) {
                1 if !refresh => return Ok(Dialect::Mysql),
                2 if !refresh => return Ok(Dialect::MariaDb),
                _ => {}
            }
            let version =
                diesel::select(diesel::dsl::sql::<Text>("VERSION()")).get_result::<String>(self)?;
            let dialect = if version.contains("MariaDB") {
                Dialect::MariaDb
            } else {
                Dialect::Mysql
            };
            LAST_DIALECT.store(
                if dialect == Dialect::MariaDb { 2 } else { 1 },
                Ordering::Relaxed,
            );
            Ok(dialect)
        }

        // InnoDB counts whole seconds: a timeout rounds up to the next second.
        // The old value waits in a session variable, so setting it costs one
        // round trip and restoring one more.
        fn __occ_set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError> {
            let seconds = timeout
                .as_nanos()
                .div_ceil(1_000_000_000)
                .clamp(1, 1_073_741_824);
            self.batch_execute(&format!(
                "SET @occ_saved_lock_wait_timeout = @@SESSION.innodb_lock_wait_timeout, \
                 SESSION innodb_lock_wait_timeout = {seconds}"
            ))?;
            Ok(String::new())
        }

        // A lock wait timeout rolls back only the statement: the connection is
        // usable and must get its old timeout back either way.
        fn __occ_restore_lock_timeout(
            &mut self,
            _saved: String,
            _failed: bool,
        ) -> Result<(), OccError> {
            self.batch_execute(
                "SET SESSION innodb_lock_wait_timeout = @occ_saved_lock_wait_timeout",
            )?;
            Ok(())
        }
    }
}
