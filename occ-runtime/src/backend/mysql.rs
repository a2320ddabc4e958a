use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

use diesel::connection::{CacheSize, Connection, SimpleConnection};
use diesel::sql_types::Text;
use diesel::{MysqlConnection, RunQueryDsl};

use super::sealed::{LockBackend, Locks, Transactions};
use super::{Dialect, IsolationAt, OccConnection, RowLocking};
use crate::error::OccError;

impl OccConnection for MysqlConnection {}
impl RowLocking for MysqlConnection {}

/// The dialect last seen on a MySQL-backend connection: 0 unknown, 1 MySQL,
/// 2 MariaDB. A process talks to one kind of server in the common case; a
/// lock statement that the server rejects as a syntax error refreshes it.
static LAST_DIALECT: AtomicU8 = AtomicU8::new(0);

/// Renders in the dialect this process last saw on a MySQL-backend server;
/// MySQL 8's until one was seen.
impl LockBackend for diesel::mysql::Mysql {
    fn default_dialect() -> Dialect {
        match LAST_DIALECT.load(Ordering::Relaxed) {
            2 => Dialect::MariaDb,
            _ => Dialect::Mysql,
        }
    }
}

impl Transactions for MysqlConnection {
    const ISOLATION: IsolationAt = IsolationAt::Before;

    // An error that arrives inside a result set (Galera aborting a
    // transaction while a locking read streams its rows) leaves the prepared
    // statement that read it in a state where its next execution waits
    // forever for a reply. Dropping the cached statements closes them; the
    // next use prepares them again.
    fn after_failed_transaction(&mut self) {
        self.set_prepared_statement_cache_size(CacheSize::Disabled);
        self.set_prepared_statement_cache_size(CacheSize::Unbounded);
    }
}

impl Locks for MysqlConnection {
    fn dialect(&mut self, refresh: bool) -> Result<Dialect, OccError> {
        match LAST_DIALECT.load(Ordering::Relaxed) {
            1 if !refresh => return Ok(Dialect::Mysql),
            2 if !refresh => return Ok(Dialect::MariaDb),
            _ => {}
        }
        let version =
            diesel::select(diesel::dsl::sql::<Text>("VERSION()")).get_result::<String>(self)?;
        let (dialect, code) = if version.contains("MariaDB") {
            (Dialect::MariaDb, 2)
        } else {
            (Dialect::Mysql, 1)
        };
        LAST_DIALECT.store(code, Ordering::Relaxed);
        Ok(dialect)
    }

    // InnoDB counts whole seconds: a timeout rounds up to the next second.
    // The old value waits in a session variable, so setting it costs one
    // round trip and restoring one more.
    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError> {
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

    // A lock wait timeout rolls back only the statement (a deadlock the whole
    // transaction): the session stays usable and its variable must go back
    // either way.
    fn restore_lock_timeout(&mut self, _saved: String, _aborted: bool) -> Result<(), OccError> {
        self.batch_execute("SET SESSION innodb_lock_wait_timeout = @occ_saved_lock_wait_timeout")?;
        Ok(())
    }
}
