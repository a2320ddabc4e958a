use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use diesel::mysql::Mysql;

use super::mysql_like::{self, MysqlLike};
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
    const RESET: Option<&'static str> = Some(mysql_like::RESET);

    /// `mariadb` once this process has seen a MariaDB server (a row lock
    /// asks the server its dialect), `mysql` before: asking on every
    /// operation would cost a round trip.
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn system_name() -> &'static str {
        match Self::default_dialect() {
            Dialect::MariaDb => "mariadb",
            _ => "mysql",
        }
    }

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn status_code(error: &OccError) -> Option<&'static str> {
        mysql_like::status_code(Self::default_dialect(), error)
    }
}

impl MysqlLike for Mysql {}

/// Renders in the dialect this process last saw on a MySQL-backend server;
/// MySQL 8's until one was seen.
impl LockBackend for Mysql {
    const DIALECTS: bool = true;

    fn lock_failure(dialect: Dialect, nowait: bool, error: OccError) -> OccError {
        mysql_like::lock_failure(dialect, nowait, error)
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

    async fn set_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        timeout: Duration,
    ) -> Result<String, OccError> {
        mysql_like::set_lock_timeout(conn, timeout).await
    }

    async fn restore_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        _saved: String,
        _aborted: bool,
    ) -> Result<(), OccError> {
        mysql_like::restore_lock_timeout(conn).await
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
