use core::time::Duration;

use diesel::pg::Pg;

use super::sealed::{Hooks, LockBackend};
use super::{Dialect, IsolationAt};
use crate::error::OccError;
use crate::exec::{Exec, TextQuery};

impl Hooks for Pg {
    const ISOLATION: IsolationAt = IsolationAt::First;
    const WRITES_RETURN_ROWS: bool = true;
}

impl LockBackend for Pg {
    fn default_dialect() -> Dialect {
        Dialect::Postgres
    }

    async fn dialect<K, C: Exec<K, Db = Self> + Send>(
        _: &mut C,
        _: bool,
    ) -> Result<Dialect, OccError> {
        Ok(Dialect::Postgres)
    }

    // One round trip reads the old value and sets the new one, local to the
    // transaction. PostgreSQL evaluates the select list left to right.
    async fn set_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        timeout: Duration,
    ) -> Result<String, OccError> {
        // 0 would mean "no timeout": the shortest real wait is 1 ms.
        let millis = timeout.as_nanos().div_ceil(1_000_000).max(1);
        let old = conn
            .text(TextQuery::bound(
                "SELECT current_setting('lock_timeout') AS occ_text, \
                 set_config('lock_timeout', ",
                format!("{millis}ms"),
                ", true) AS occ_new",
            ))
            .await?;
        Ok(old.unwrap_or_default())
    }

    // A statement the server refused aborts the transaction: it refuses every
    // statement until rollback, which discards the local setting anyway. A
    // failure raised on the client (no row, a row that does not decode) leaves
    // it usable, and the setting must go back.
    async fn restore_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
        conn: &mut C,
        saved: String,
        aborted: bool,
    ) -> Result<(), OccError> {
        if !aborted {
            conn.text(TextQuery::bound(
                "SELECT set_config('lock_timeout', ",
                saved,
                ", true) AS occ_text",
            ))
            .await?;
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
mod connection {
    use diesel::PgConnection;

    use crate::backend::sealed::Kind;
    use crate::backend::OccConnection;
    use crate::exec::{AfterFailure, Blocking};

    impl OccConnection for PgConnection {}
    impl AfterFailure for PgConnection {}
    impl Kind for PgConnection {
        type Kind = Blocking;
    }
}

#[cfg(feature = "async-postgres")]
mod async_connection {
    use diesel_async::AsyncPgConnection;

    use crate::backend::sealed::Kind;
    use crate::exec::NonBlocking;

    impl Kind for AsyncPgConnection {
        type Kind = NonBlocking;
    }
}
