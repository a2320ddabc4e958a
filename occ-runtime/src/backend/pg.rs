use core::time::Duration;

use diesel::pg::Pg;

use super::sealed::{Hooks, LockBackend};
use super::{Dialect, IsolationAt};
use crate::error::OccError;
use crate::exec::{Exec, TextQuery};

impl Hooks for Pg {
    const ISOLATION: IsolationAt = IsolationAt::First;
    const WRITES_RETURN_ROWS: bool = true;

    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn system_name() -> &'static str {
        "postgresql"
    }

    /// The SQLSTATE of each class occ tells apart; a lock timeout and a
    /// failed `NOWAIT` share 55P03.
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn status_code(error: &OccError) -> Option<&'static str> {
        use diesel::result::{DatabaseErrorKind, Error};
        Some(match error {
            OccError::Deadlock(_) => "40P01",
            OccError::SerializationFailure(_) => "40001",
            OccError::LockNotAvailable(_) | OccError::LockTimeout(_) => "55P03",
            OccError::StatementTimeout(_) => "57014",
            OccError::ReadOnly(_) => "25006",
            OccError::Database(Error::DatabaseError(kind, _)) => match kind {
                DatabaseErrorKind::UniqueViolation => "23505",
                DatabaseErrorKind::ForeignKeyViolation => "23503",
                DatabaseErrorKind::NotNullViolation => "23502",
                DatabaseErrorKind::CheckViolation => "23514",
                _ => return None,
            },
            _ => return None,
        })
    }
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

/// The SQL occ writes on this backend: lock clauses and the version probe's
/// read.
mod sql {
    use diesel::pg::{Pg, PgQueryBuilder};
    use diesel::query_builder::{AstPass, QueryBuilder, QueryFragment};
    use diesel::{QueryResult, Table};

    use crate::lock::clause::RowLock;
    use crate::lock::{AllTables, Exclusive, KeyShared, NoKeyExclusive, Of, Shared, WaitPolicy};
    use crate::query::{CurrentRead, ForModify};

    /// A strength PostgreSQL can lock with.
    pub trait PgStrength {
        const SQL: &'static str;
    }
    impl PgStrength for Exclusive {
        const SQL: &'static str = " FOR UPDATE";
    }
    impl PgStrength for Shared {
        const SQL: &'static str = " FOR SHARE";
    }
    impl PgStrength for NoKeyExclusive {
        const SQL: &'static str = " FOR NO KEY UPDATE";
    }
    impl PgStrength for KeyShared {
        const SQL: &'static str = " FOR KEY SHARE";
    }

    /// A version probe on PostgreSQL reads the row plainly: a fresh snapshot
    /// per statement under `READ COMMITTED`, a serialization error under
    /// stricter levels.
    impl QueryFragment<Pg> for CurrentRead {
        fn walk_ast<'b>(&'b self, _: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            Ok(())
        }
    }

    impl QueryFragment<Pg> for ForModify {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(" FOR UPDATE");
            Ok(())
        }
    }

    impl<S, W> QueryFragment<Pg> for RowLock<S, W, AllTables>
    where
        S: PgStrength,
        W: WaitPolicy,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(S::SQL);
            out.push_sql(W::SQL);
            Ok(())
        }
    }

    impl<S, W, T> QueryFragment<Pg> for RowLock<S, W, Of<T>>
    where
        S: PgStrength,
        W: WaitPolicy,
        T: Table + QueryFragment<Pg>,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(S::SQL);
            out.push_sql(" OF ");
            // `OF` takes a name as the FROM clause exposes it: PostgreSQL
            // refuses a schema-qualified one, so only the table's own name.
            let mut table = PgQueryBuilder::default();
            self.of.0.to_sql(&mut table, &Pg)?;
            let rendered = table.finish();
            out.push_identifier(&unqualified(&rendered))?;
            out.push_sql(W::SQL);
            Ok(())
        }
    }

    /// The last identifier of a rendered `"schema"."table"` (or `"table"`),
    /// unquoted.
    pub(crate) fn unqualified(rendered: &str) -> String {
        let mut last = String::new();
        let mut chars = rendered.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            last.clear();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        last.push('"');
                    }
                    '"' => break,
                    c => last.push(c),
                }
            }
        }
        last
    }

    #[cfg(test)]
    mod tests {
        use super::unqualified;

        #[test]
        fn of_takes_the_last_identifier() {
            assert_eq!(unqualified(r#""jobs""#), "jobs");
            assert_eq!(unqualified(r#""sales"."jobs""#), "jobs");
            assert_eq!(unqualified(r#""we""ird"."a.""b""#), r#"a."b"#);
        }
    }
}
