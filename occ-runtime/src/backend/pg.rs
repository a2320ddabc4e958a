use core::time::Duration;

use diesel::sql_types::Text;
use diesel::{PgConnection, RunQueryDsl};

use super::sealed::{LockBackend, Locks, Transactions};
use super::{Dialect, IsolationAt, OccConnection, RowLocking};
use crate::error::OccError;

impl OccConnection for PgConnection {}
impl RowLocking for PgConnection {}

impl LockBackend for diesel::pg::Pg {
    fn default_dialect() -> Dialect {
        Dialect::Postgres
    }
}

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    old: String,
}

impl Transactions for PgConnection {
    const ISOLATION: IsolationAt = IsolationAt::First;
}

impl Locks for PgConnection {
    fn dialect(&mut self, _refresh: bool) -> Result<Dialect, OccError> {
        Ok(Dialect::Postgres)
    }

    // One round trip reads the old value and sets the new one, local to the
    // transaction. PostgreSQL evaluates the select list left to right.
    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError> {
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

    // A statement the server refused aborts the transaction: it refuses every
    // statement until rollback, which discards the local setting anyway. A
    // failure raised on the client (no row, a row that does not decode) leaves
    // it usable, and the setting must go back.
    fn restore_lock_timeout(&mut self, saved: String, aborted: bool) -> Result<(), OccError> {
        if !aborted {
            diesel::sql_query("SELECT set_config('lock_timeout', $1, true)")
                .bind::<Text, _>(saved)
                .execute(self)?;
        }
        Ok(())
    }
}
