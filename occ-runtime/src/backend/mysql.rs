use alloc::borrow::Cow;
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use diesel::mysql::Mysql;

use super::sealed::{Hooks, LockBackend};
use super::{Dialect, IsolationAt};
use crate::error::OccError;
use crate::exec::{Exec, TextQuery};

/// The dialect last seen on a MySQL-backend connection: 0 unknown, 1 MySQL,
/// 2 MariaDB. A process talks to one kind of server in the common case; a
/// lock statement that the server rejects as a syntax error refreshes it.
static LAST_DIALECT: AtomicU8 = AtomicU8::new(0);

impl Hooks for Mysql {
    const ISOLATION: IsolationAt = IsolationAt::Before;

    // A lock interrupted between setting its timeout and putting it back
    // (its future dropped) leaves the session's timeout changed: a repair
    // puts back what was saved, if anything was.
    const RESET: Option<&'static str> = Some(
        "SET SESSION innodb_lock_wait_timeout = CAST(\
         COALESCE(@occ_saved_lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout) AS UNSIGNED), \
         @occ_saved_lock_wait_timeout = NULL",
    );
}

/// Renders in the dialect this process last saw on a MySQL-backend server;
/// MySQL 8's until one was seen.
impl LockBackend for Mysql {
    const DIALECTS: bool = true;

    // MariaDB reports a failed NOWAIT as a lock wait timeout (1205).
    fn lock_failure(dialect: Dialect, nowait: bool, error: OccError) -> OccError {
        if nowait && dialect == Dialect::MariaDb {
            error.nowait_failure()
        } else {
            error
        }
    }

    fn default_dialect() -> Dialect {
        match LAST_DIALECT.load(Ordering::Relaxed) {
            2 => Dialect::MariaDb,
            _ => Dialect::Mysql,
        }
    }

    async fn dialect<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        refresh: bool,
    ) -> Result<Dialect, OccError> {
        match LAST_DIALECT.load(Ordering::Relaxed) {
            1 if !refresh => return Ok(Dialect::Mysql),
            2 if !refresh => return Ok(Dialect::MariaDb),
            _ => {}
        }
        let version = conn
            .text(TextQuery::new("SELECT VERSION() AS occ_text"))
            .await?;
        let (dialect, code) = match version {
            Some(version) if version.contains("MariaDB") => (Dialect::MariaDb, 2),
            _ => (Dialect::Mysql, 1),
        };
        LAST_DIALECT.store(code, Ordering::Relaxed);
        Ok(dialect)
    }

    // InnoDB counts whole seconds: a timeout rounds up to the next second.
    // The old value waits in a session variable, so setting it costs one
    // round trip and restoring one more.
    async fn set_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
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

    // A lock wait timeout rolls back only the statement (a deadlock the whole
    // transaction): the session stays usable and its variable must go back
    // either way.
    async fn restore_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        _saved: String,
        _aborted: bool,
    ) -> Result<(), OccError> {
        conn.batch(Cow::Borrowed(
            "SET SESSION innodb_lock_wait_timeout = @occ_saved_lock_wait_timeout, \
             @occ_saved_lock_wait_timeout = NULL",
        ))
        .await?;
        Ok(())
    }
}

#[cfg(feature = "mysql")]
mod connection {
    use diesel::connection::CacheSize;
    use diesel::MysqlConnection;

    use crate::backend::sealed::Kind;
    use crate::backend::OccConnection;
    use crate::exec::{AfterFailure, Blocking};

    impl OccConnection for MysqlConnection {}
    impl Kind for MysqlConnection {
        type Kind = Blocking;
    }

    // An error that arrives inside a result set (Galera aborting a
    // transaction while a locking read streams its rows) leaves the prepared
    // statement that read it in a state where its next execution waits
    // forever for a reply. Dropping the cached statements closes them; the
    // next use prepares them again.
    impl AfterFailure for MysqlConnection {
        fn after_failed_transaction(&mut self) {
            use diesel::Connection;
            self.set_prepared_statement_cache_size(CacheSize::Disabled);
            self.set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
    }
}

#[cfg(feature = "async-mysql")]
mod async_connection {
    use diesel_async::AsyncMysqlConnection;

    use crate::backend::sealed::Kind;
    use crate::exec::NonBlocking;

    impl Kind for AsyncMysqlConnection {
        type Kind = NonBlocking;
    }
}

/// The SQL occ writes on this backend: lock clauses and the version probe's
/// read.
mod sql {
    use diesel::mysql::Mysql;
    use diesel::query_builder::{AstPass, QueryFragment};
    use diesel::QueryResult;

    use crate::backend::Dialect;
    use crate::lock::clause::RowLock;
    use crate::lock::{AllTables, Exclusive, Shared, WaitPolicy};
    use crate::query::CurrentRead;

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
    /// (`LOCK IN SHARE MODE`, which both accept): InnoDB's plain `SELECT`
    /// inside a `REPEATABLE READ` transaction returns the snapshot, which
    /// would report the version the failed write expected, or a row already
    /// deleted.
    impl QueryFragment<Mysql> for CurrentRead {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
            out.push_sql(" LOCK IN SHARE MODE");
            Ok(())
        }
    }

    impl<S, W> QueryFragment<Mysql> for RowLock<S, W, AllTables>
    where
        S: MysqlStrength,
        W: WaitPolicy,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
            out.push_sql(S::sql(self.dialect));
            out.push_sql(W::SQL);
            Ok(())
        }
    }
}
