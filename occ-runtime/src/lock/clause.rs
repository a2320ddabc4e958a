//! The lock clause: what a lock's type parameters mean, and the one place
//! that renders them as SQL for each backend and dialect.

use core::marker::PhantomData;
use core::time::Duration;

use diesel::query_builder::QueryId;
use diesel::Table;

use crate::backend::Dialect;

/// `FOR UPDATE`: nobody else can lock, update or delete the row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exclusive;
/// `FOR SHARE` (`LOCK IN SHARE MODE` on MariaDB): others can read and share,
/// nobody can update or delete the row.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shared;
/// PostgreSQL `FOR NO KEY UPDATE`: like [`Exclusive`], but lets `KEY SHARE`
/// lockers (foreign-key checks) through. Take it when the key is not changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKeyExclusive;
/// PostgreSQL `FOR KEY SHARE`: only blocks deleting the row or changing its key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyShared;

/// Wait for a locked row, as long as the server's lock timeout allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait;
/// Wait at most the given time, then fail with
/// [`OccError::LockTimeout`](crate::OccError::LockTimeout).
#[derive(Debug, Clone, Copy)]
pub struct WaitAtMost(pub(crate) Duration);
/// `NOWAIT`: fail at once with
/// [`OccError::LockNotAvailable`](crate::OccError::LockNotAvailable).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWait;
/// `SKIP LOCKED`: leave locked rows out of the result.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipLocked;

/// Lock the rows of every table in the query.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllTables;
/// PostgreSQL `OF table`: lock only this table's rows in a join.
#[derive(Debug, Clone, Copy, Default)]
pub struct Of<T>(pub(crate) T);

/// A wait policy not chosen yet: [`Wait`], the one a builder starts with.
/// `.nowait()`, `.skip_locked()` and `.timeout(..)` need it, so that a lock
/// has one wait policy. Sealed: implemented by occ only.
#[diagnostic::on_unimplemented(
    message = "this lock already has a wait policy",
    label = "a second wait policy",
    note = "a row lock waits (optionally with `.timeout(..)`), fails at once (`.nowait()`) or skips locked rows (`.skip_locked()`): choose one"
)]
pub trait WaitUnchosen {
    #[doc(hidden)]
    fn sealed(_: seal::Seal);
}
impl WaitUnchosen for Wait {
    fn sealed(_: seal::Seal) {}
}

/// How a lock treats rows that others hold: [`Wait`], [`WaitAtMost`],
/// [`NoWait`] or [`SkipLocked`]. Sealed: implemented by occ only.
pub trait WaitPolicy: Copy {
    #[doc(hidden)]
    const SQL: &'static str;
    #[doc(hidden)]
    const NOWAIT: bool = false;
    #[doc(hidden)]
    fn timeout(&self) -> Option<Duration> {
        None
    }
    #[doc(hidden)]
    fn sealed(_: seal::Seal);
}
impl WaitPolicy for Wait {
    const SQL: &'static str = "";
    fn sealed(_: seal::Seal) {}
}
impl WaitPolicy for WaitAtMost {
    const SQL: &'static str = "";
    fn timeout(&self) -> Option<Duration> {
        Some(self.0)
    }
    fn sealed(_: seal::Seal) {}
}
impl WaitPolicy for NoWait {
    const SQL: &'static str = " NOWAIT";
    const NOWAIT: bool = true;
    fn sealed(_: seal::Seal) {}
}
impl WaitPolicy for SkipLocked {
    const SQL: &'static str = " SKIP LOCKED";
    fn sealed(_: seal::Seal) {}
}

/// Which tables' rows a lock takes: [`AllTables`], or PostgreSQL's
/// [`Of`] one table. Sealed: implemented by occ only.
pub trait LockTarget: Clone {
    #[doc(hidden)]
    fn sealed(_: seal::Seal);
}
impl LockTarget for AllTables {
    fn sealed(_: seal::Seal) {}
}
impl<T: Table + Clone> LockTarget for Of<T> {
    fn sealed(_: seal::Seal) {}
}

/// A type outside code cannot name: a trait method that takes it cannot be
/// written there, so the trait is implemented by occ only.
mod seal {
    pub struct Seal;
}

/// The SQL of each strength per backend. Public traits in a private module:
/// they bound the clause's rendering, but nobody outside can name or
/// implement them.
#[cfg(any(feature = "postgres-backend", feature = "mysql-backend"))]
pub(crate) mod sealed {
    use super::*;

    /// A strength PostgreSQL can lock with.
    #[cfg(feature = "postgres-backend")]
    pub trait PgStrength {
        const SQL: &'static str;
    }
    #[cfg(feature = "postgres-backend")]
    impl PgStrength for Exclusive {
        const SQL: &'static str = " FOR UPDATE";
    }
    #[cfg(feature = "postgres-backend")]
    impl PgStrength for Shared {
        const SQL: &'static str = " FOR SHARE";
    }
    #[cfg(feature = "postgres-backend")]
    impl PgStrength for NoKeyExclusive {
        const SQL: &'static str = " FOR NO KEY UPDATE";
    }
    #[cfg(feature = "postgres-backend")]
    impl PgStrength for KeyShared {
        const SQL: &'static str = " FOR KEY SHARE";
    }

    /// A strength MySQL and MariaDB can lock with.
    #[cfg(feature = "mysql-backend")]
    #[diagnostic::on_unimplemented(
        message = "MySQL and MariaDB have no `{Self}` row lock",
        note = "MySQL and MariaDB lock rows with `.exclusive()` (FOR UPDATE) or `.shared()` (FOR SHARE / LOCK IN SHARE MODE)"
    )]
    pub trait MysqlStrength {
        fn sql(dialect: Dialect) -> &'static str;
    }
    #[cfg(feature = "mysql-backend")]
    impl MysqlStrength for Exclusive {
        fn sql(_: Dialect) -> &'static str {
            " FOR UPDATE"
        }
    }
    #[cfg(feature = "mysql-backend")]
    impl MysqlStrength for Shared {
        fn sql(dialect: Dialect) -> &'static str {
            match dialect {
                Dialect::MariaDb => " LOCK IN SHARE MODE",
                _ => " FOR SHARE",
            }
        }
    }
}

/// The locking clause occ appends to a query. Its SQL depends on the server's
/// dialect, known only at run time, so it has no static query id: diesel then
/// caches the prepared statement by its SQL text.
#[derive(Debug, Clone, Copy)]
pub struct RowLock<S, W, O> {
    // Read only where a MySQL-backend renders a shared lock.
    #[cfg_attr(not(feature = "mysql-backend"), allow(dead_code))]
    pub(crate) dialect: Dialect,
    // Read only where PostgreSQL renders `OF table`.
    #[cfg_attr(not(feature = "postgres-backend"), allow(dead_code))]
    pub(crate) of: O,
    pub(crate) mode: PhantomData<(S, W)>,
}

impl<S, W, O> RowLock<S, W, O> {
    pub(crate) fn new(dialect: Dialect, of: O) -> Self {
        Self {
            dialect,
            of,
            mode: PhantomData,
        }
    }
}

impl<S, W, O> QueryId for RowLock<S, W, O> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

#[cfg(feature = "postgres-backend")]
mod pg {
    use diesel::pg::{Pg, PgQueryBuilder};
    use diesel::query_builder::{AstPass, QueryBuilder, QueryFragment};
    use diesel::QueryResult;

    use super::sealed::PgStrength;
    use super::*;

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
    pub(super) fn unqualified(rendered: &str) -> String {
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
}

#[cfg(feature = "mysql-backend")]
mod mysql {
    use diesel::mysql::Mysql;
    use diesel::query_builder::{AstPass, QueryFragment};
    use diesel::QueryResult;

    use super::sealed::MysqlStrength;
    use super::*;

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

#[cfg(all(test, feature = "postgres-backend"))]
mod tests {
    use super::pg::unqualified;

    #[test]
    fn of_takes_the_last_identifier() {
        assert_eq!(unqualified(r#""jobs""#), "jobs");
        assert_eq!(unqualified(r#""sales"."jobs""#), "jobs");
        assert_eq!(unqualified(r#""we""ird"."a.""b""#), r#"a."b"#);
    }
}
