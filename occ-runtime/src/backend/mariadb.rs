//! diesel 2.4's own MariaDB backend, `diesel::mariadb::Mariadb`: one dialect
//! (MariaDB's), and otherwise what the MySQL family shares
//! (`backend/mysql_like.rs`).

use core::time::Duration;

use diesel::mariadb::Mariadb;

use super::mysql_like::{self, MysqlLike};
use super::sealed::{Hooks, LockBackend};
use super::{Dialect, IsolationAt};
use crate::error::OccError;
use crate::exec::Exec;

impl Hooks for Mariadb {
    const ISOLATION: IsolationAt = IsolationAt::Before;
    const RESET: Option<&'static str> = Some(mysql_like::RESET);

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn system_name() -> &'static str {
        "mariadb"
    }

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn status_code(error: &OccError) -> Option<&'static str> {
        mysql_like::status_code(Dialect::MariaDb, error)
    }
}

impl MysqlLike for Mariadb {}

impl LockBackend for Mariadb {
    fn lock_failure(dialect: Dialect, nowait: bool, error: OccError) -> OccError {
        mysql_like::lock_failure(dialect, nowait, error)
    }

    fn default_dialect() -> Dialect {
        Dialect::MariaDb
    }

    async fn dialect<K, C: Exec<K, Db = Self> + Send>(
        _conn: &mut C,
        _refresh: bool,
    ) -> Result<Dialect, OccError> {
        Ok(Dialect::MariaDb)
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

#[cfg(feature = "mariadb")]
mod connection {
    use diesel::connection::CacheSize;
    use diesel::MariadbConnection;

    use crate::backend::sealed::Kind;
    use crate::backend::OccConnection;
    use crate::exec::{AfterFailure, Blocking};

    impl OccConnection for MariadbConnection {}
    impl Kind for MariadbConnection {
        type Kind = Blocking;
    }

    // The same client library as `MysqlConnection`, with the same trap: a
    // prepared statement that read an error inside its result set waits
    // forever on its next execution. Dropping the cache closes them.
    impl AfterFailure for MariadbConnection {
        fn after_failed_transaction(&mut self) {
            use diesel::Connection;
            self.set_prepared_statement_cache_size(CacheSize::Disabled);
            self.set_prepared_statement_cache_size(CacheSize::Unbounded);
        }
    }
}

#[cfg(feature = "async-mariadb")]
mod async_connection {
    use diesel_async::AsyncMariadbConnection;

    use crate::backend::sealed::Kind;
    use crate::exec::NonBlocking;

    impl Kind for AsyncMariadbConnection {
        type Kind = NonBlocking;
    }
}
