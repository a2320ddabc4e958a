//! Row locks on any diesel select query: `.exclusive()`, `.shared()` and the
//! PostgreSQL-only strengths, with `NOWAIT`, `SKIP LOCKED`, a lock timeout and
//! `OF table`.
//!
//! The strength, the wait policy and `OF` are part of the type, so what a
//! backend cannot do (a key-share lock on MySQL, `.nowait().skip_locked()`, any
//! row lock on SQLite) does not compile.

use core::marker::PhantomData;
use core::time::Duration;

use diesel::backend::Backend;
use diesel::query_builder::{AsQuery, AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::{LimitDsl, LoadQuery, LockingDsl};
#[cfg(any(feature = "postgres", feature = "mysql"))]
use diesel::RunQueryDsl;
use diesel::{QueryResult, Table};

use crate::connection::{transaction_depth, Dialect, RowLocking};
use crate::error::OccError;

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
/// Wait at most the given time, then fail with [`OccError::LockTimeout`].
#[derive(Debug, Clone, Copy)]
pub struct WaitAtMost(Duration);
/// `NOWAIT`: fail at once with [`OccError::LockNotAvailable`].
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
pub struct Of<T>(T);

/// A wait policy that has not been chosen yet: `.nowait()`, `.skip_locked()`
/// and `.timeout(..)` each choose one.
#[diagnostic::on_unimplemented(
    message = "this lock already has a wait policy",
    label = "a second wait policy",
    note = "a row lock waits (optionally with `.timeout(..)`), fails at once (`.nowait()`) or skips locked rows (`.skip_locked()`): choose one"
)]
pub trait WaitUnchosen {}
impl WaitUnchosen for Wait {}

/// A wait policy: how a lock treats rows that others hold.
pub trait WaitPolicy: Copy {
    #[doc(hidden)]
    const SQL: &'static str;
    #[doc(hidden)]
    fn timeout(&self) -> Option<Duration> {
        None
    }
    #[doc(hidden)]
    const NOWAIT: bool = false;
}
impl WaitPolicy for Wait {
    const SQL: &'static str = "";
}
impl WaitPolicy for WaitAtMost {
    const SQL: &'static str = "";
    fn timeout(&self) -> Option<Duration> {
        Some(self.0)
    }
}
impl WaitPolicy for NoWait {
    const SQL: &'static str = " NOWAIT";
    const NOWAIT: bool = true;
}
impl WaitPolicy for SkipLocked {
    const SQL: &'static str = " SKIP LOCKED";
}

/// The locking clause occ appends to a query. Its SQL depends on the server's
/// dialect, known only at run time, so it has no static query id: diesel then
/// caches the prepared statement by its SQL text.
// Only the server backends render the fields.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub struct RowLock<S, W, O> {
    dialect: Dialect,
    of: O,
    _mode: PhantomData<(S, W)>,
}

impl<S, W, O> QueryId for RowLock<S, W, O> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// A strength PostgreSQL can lock with.
pub trait PgStrength {
    #[doc(hidden)]
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

/// A strength MySQL and MariaDB can lock with.
#[diagnostic::on_unimplemented(
    message = "MySQL and MariaDB have no `{Self}` row lock",
    note = "MySQL and MariaDB lock rows with `.exclusive()` (FOR UPDATE) or `.shared()` (FOR SHARE / LOCK IN SHARE MODE)"
)]
pub trait MysqlStrength {
    #[doc(hidden)]
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

/// `OF table`, or nothing.
pub trait LockTarget<DB: Backend> {
    #[doc(hidden)]
    fn walk<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
}
impl<DB: Backend> LockTarget<DB> for AllTables {
    fn walk<'b>(&'b self, _: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        Ok(())
    }
}

#[cfg(feature = "postgres")]
impl<T> LockTarget<diesel::pg::Pg> for Of<T>
where
    T: Table + QueryFragment<diesel::pg::Pg>,
{
    fn walk<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql(" OF ");
        self.0.walk_ast(out)
    }
}

#[cfg(feature = "postgres")]
impl<S, W, O> QueryFragment<diesel::pg::Pg> for RowLock<S, W, O>
where
    S: PgStrength,
    W: WaitPolicy,
    O: LockTarget<diesel::pg::Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        out.push_sql(S::SQL);
        self.of.walk(out.reborrow())?;
        out.push_sql(W::SQL);
        Ok(())
    }
}

#[cfg(feature = "mysql")]
impl<S, W> QueryFragment<diesel::mysql::Mysql> for RowLock<S, W, AllTables>
where
    S: MysqlStrength,
    W: WaitPolicy,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::mysql::Mysql>) -> QueryResult<()> {
        out.push_sql(S::sql(self.dialect));
        out.push_sql(W::SQL);
        Ok(())
    }
}

/// A select query with a row lock; run it with [`load`](Self::load),
/// [`get_result`](Self::get_result), [`get_results`](Self::get_results) or
/// [`first`](Self::first) inside a transaction.
#[derive(Debug, Clone, Copy)]
#[must_use = "a lock builder does nothing until it runs: call .load(conn), .get_result(conn) or .first(conn)"]
pub struct Locked<Q, S, W = Wait, O = AllTables> {
    query: Q,
    wait: W,
    of: O,
    strength: PhantomData<S>,
}

/// Row-lock builders for every diesel select query (`table`, `table.find(..)`,
/// `table.filter(..).order(..).limit(..)`, joins). Brought in by `occ::prelude`.
///
/// The lock is taken by the terminal method, which refuses to run outside a
/// transaction ([`OccError::NotInTransaction`]). diesel cannot lock boxed
/// queries or queries with `DISTINCT`, `GROUP BY` or `HAVING`.
pub trait LockDsl: AsQuery + Sized {
    /// `FOR UPDATE`: an exclusive lock on every row read.
    fn exclusive(self) -> Locked<Self, Exclusive> {
        Locked::new(self)
    }
    /// `FOR SHARE` (`LOCK IN SHARE MODE` on MariaDB): a shared lock on every row read.
    fn shared(self) -> Locked<Self, Shared> {
        Locked::new(self)
    }
    /// PostgreSQL `FOR NO KEY UPDATE`.
    fn no_key_exclusive(self) -> Locked<Self, NoKeyExclusive> {
        Locked::new(self)
    }
    /// PostgreSQL `FOR KEY SHARE`.
    fn key_shared(self) -> Locked<Self, KeyShared> {
        Locked::new(self)
    }
}

impl<Q: AsQuery> LockDsl for Q {}

impl<Q, S> Locked<Q, S> {
    fn new(query: Q) -> Self {
        Self {
            query,
            wait: Wait,
            of: AllTables,
            strength: PhantomData,
        }
    }
}

impl<Q, S, W, O> Locked<Q, S, W, O> {
    fn with_wait<W2>(self, wait: W2) -> Locked<Q, S, W2, O> {
        Locked {
            query: self.query,
            wait,
            of: self.of,
            strength: PhantomData,
        }
    }

    /// `NOWAIT`: if a row is locked by another transaction, fail at once with
    /// [`OccError::LockNotAvailable`] instead of waiting.
    pub fn nowait(self) -> Locked<Q, S, NoWait, O>
    where
        W: WaitUnchosen,
    {
        self.with_wait(NoWait)
    }

    /// `SKIP LOCKED`: leave rows locked by other transactions out of the
    /// result (the job-queue pattern).
    pub fn skip_locked(self) -> Locked<Q, S, SkipLocked, O>
    where
        W: WaitUnchosen,
    {
        self.with_wait(SkipLocked)
    }

    /// Wait at most `timeout` for a locked row, then fail with
    /// [`OccError::LockTimeout`]. Set for this statement only and restored
    /// afterwards: PostgreSQL's `lock_timeout` (millisecond precision),
    /// InnoDB's `innodb_lock_wait_timeout` (whole seconds, rounded up).
    pub fn timeout(self, timeout: Duration) -> Locked<Q, S, WaitAtMost, O>
    where
        W: WaitUnchosen,
    {
        self.with_wait(WaitAtMost(timeout))
    }
}

impl<Q, S, W> Locked<Q, S, W, AllTables> {
    /// PostgreSQL `OF table`: in a join, lock only `table`'s rows.
    pub fn of<T: Table>(self, table: T) -> Locked<Q, S, W, Of<T>> {
        Locked {
            query: self.query,
            wait: self.wait,
            of: Of(table),
            strength: PhantomData,
        }
    }
}

impl<Q, S, W, O> Locked<Q, S, W, O>
where
    W: WaitPolicy,
{
    fn clause(&self, dialect: Dialect) -> RowLock<S, W, O>
    where
        O: Clone,
    {
        RowLock {
            dialect,
            of: self.of.clone(),
            _mode: PhantomData,
        }
    }

    /// The SQL this lock runs on backend `DB` in `dialect`, with its binds,
    /// as `diesel::debug_query` prints it: for logs and tests.
    pub fn to_sql<DB>(&self, dialect: Dialect) -> String
    where
        DB: Backend + Default,
        DB::QueryBuilder: Default,
        Q: Clone + LockingDsl<RowLock<S, W, O>>,
        O: Clone,
        Q::Output: QueryFragment<DB>,
    {
        let query = self.query.clone().with_lock(self.clause(dialect));
        diesel::debug_query::<DB, _>(&query).to_string()
    }

    /// Runs the query with its lock and returns every row.
    pub fn load<U, C>(self, conn: &mut C) -> Result<Vec<U>, OccError>
    where
        C: RowLocking,
        Self: RunLocked<C, U>,
    {
        RunLocked::run_load(self, conn)
    }

    /// Same as [`load`](Self::load).
    pub fn get_results<U, C>(self, conn: &mut C) -> Result<Vec<U>, OccError>
    where
        C: RowLocking,
        Self: RunLocked<C, U>,
    {
        RunLocked::run_load(self, conn)
    }

    /// Runs the query with its lock and returns the first row; diesel's
    /// `NotFound` (wrapped in [`OccError::Database`]) when there is none.
    pub fn get_result<U, C>(self, conn: &mut C) -> Result<U, OccError>
    where
        C: RowLocking,
        Self: RunLocked<C, U>,
    {
        RunLocked::run_get_result(self, conn)
    }

    /// Adds `LIMIT 1`, locks and returns that row.
    pub fn first<U, C>(self, conn: &mut C) -> Result<U, OccError>
    where
        C: RowLocking,
        Q: LimitDsl,
        Locked<Q::Output, S, W, O>: RunLocked<C, U>,
    {
        let limited = Locked {
            query: self.query.limit(1),
            wait: self.wait,
            of: self.of,
            strength: PhantomData::<S>,
        };
        RunLocked::run_get_result(limited, conn)
    }
}

/// The bounds a lock builder's terminal needs on connection `C` loading `U`.
/// Kept apart from the methods so that a connection without row locks is
/// reported by its missing [`RowLocking`] alone.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "this locked query cannot be loaded on this connection",
    label = "needs a PostgreSQL or MySQL/MariaDB connection, and a row type that matches the selection",
    note = "SQLite has no row locks: run the read and the write in `conn.immediate_transaction(|conn| ..)` instead"
)]
pub trait RunLocked<C, U>: Sized {
    #[doc(hidden)]
    fn run_load(self, conn: &mut C) -> Result<Vec<U>, OccError>;
    #[doc(hidden)]
    fn run_get_result(self, conn: &mut C) -> Result<U, OccError>;
}

// One impl per connection type, not one over every `C: RowLocking`: with the
// connection not yet inferred, a blanket impl sends the solver through
// diesel's `QueryFragment<_>` impls until it overflows, and the user sees that
// instead of the missing `RowLocking`.
macro_rules! run_locked {
    ($($(#[$cfg:meta])* $conn:ty;)*) => {$(
        $(#[$cfg])*
        impl<Q, S, W, O, U> RunLocked<$conn, U> for Locked<Q, S, W, O>
        where
            W: WaitPolicy,
            Q: Clone + LockingDsl<RowLock<S, W, O>>,
            O: Clone,
            Q::Output: LoadQuery<'static, $conn, U>
                + QueryFragment<<$conn as diesel::Connection>::Backend>,
        {
            fn run_load(self, conn: &mut $conn) -> Result<Vec<U>, OccError> {
                self.run(conn, |query, conn| query.load(conn))
            }

            fn run_get_result(self, conn: &mut $conn) -> Result<U, OccError> {
                self.run(conn, |query, conn| query.get_result(conn))
            }
        }
    )*};
}

run_locked! {
    #[cfg(feature = "postgres")] diesel::PgConnection;
    #[cfg(feature = "mysql")] diesel::MysqlConnection;
}

// Called only from the per-connection `RunLocked` impls of the server backends.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
impl<Q, S, W, O> Locked<Q, S, W, O>
where
    W: WaitPolicy,
{
    fn run<C, R>(
        self,
        conn: &mut C,
        execute: impl Fn(Q::Output, &mut C) -> QueryResult<R>,
    ) -> Result<R, OccError>
    where
        C: RowLocking,
        Q: Clone + LockingDsl<RowLock<S, W, O>>,
        O: Clone,
        Q::Output: QueryFragment<C::Backend>,
        C::Backend: Default,
        <C::Backend as Backend>::QueryBuilder: Default,
    {
        lock_statement(conn, self.wait, |dialect, conn| {
            execute(self.query.clone().with_lock(self.clause(dialect)), conn)
        })
        .map_err(|e| match e {
            LockError::NotInTransaction => OccError::NotInTransaction {
                operation: clause_text::<C, Q, S, W, O>(&self),
            },
            LockError::Occ(e) => e,
        })
    }
}

#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn clause_text<C, Q, S, W, O>(locked: &Locked<Q, S, W, O>) -> String
where
    C: RowLocking,
    W: WaitPolicy,
    Q: Clone + LockingDsl<RowLock<S, W, O>>,
    O: Clone,
    Q::Output: QueryFragment<C::Backend>,
    C::Backend: Default,
    <C::Backend as Backend>::QueryBuilder: Default,
{
    // Rendered without touching the connection: the dialect only changes how
    // a shared lock is spelled.
    let query = locked
        .query
        .clone()
        .with_lock(locked.clause(Dialect::Mysql));
    let sql = diesel::debug_query::<C::Backend, _>(&query).to_string();
    format!("`{}`", sql.split(" -- binds").next().unwrap_or(&sql))
}

pub(crate) enum LockError {
    NotInTransaction,
    Occ(OccError),
}

impl From<OccError> for LockError {
    fn from(e: OccError) -> Self {
        Self::Occ(e)
    }
}

/// The steps around every locking statement: refuse outside a transaction,
/// learn the dialect, set and restore a timeout, classify the error.
pub(crate) fn lock_statement<C, W, R>(
    conn: &mut C,
    wait: W,
    mut execute: impl FnMut(Dialect, &mut C) -> QueryResult<R>,
) -> Result<R, LockError>
where
    C: RowLocking,
    W: WaitPolicy,
{
    if transaction_depth(conn)? == 0 {
        return Err(LockError::NotInTransaction);
    }
    let mut dialect = conn.__occ_dialect(false)?;
    let saved = match wait.timeout() {
        Some(timeout) => Some(conn.__occ_set_lock_timeout(timeout)?),
        None => None,
    };
    let mut result = execute(dialect, conn);
    // A MySQL-backend server of the other dialect than last seen rejects a
    // shared lock's syntax: learn this server's dialect and run it again.
    if dialect != Dialect::Postgres && is_syntax_error(&result) {
        let actual = conn.__occ_dialect(true)?;
        if actual != dialect {
            dialect = actual;
            result = execute(dialect, conn);
        }
    }
    if let Some(saved) = saved {
        let restored = conn.__occ_restore_lock_timeout(saved, result.is_err());
        if result.is_ok() {
            restored?;
        }
    }
    result.map_err(|e| {
        let e = OccError::from(e);
        LockError::Occ(if W::NOWAIT { e.nowait_failure() } else { e })
    })
}

fn is_syntax_error<R>(result: &QueryResult<R>) -> bool {
    matches!(result, Err(diesel::result::Error::DatabaseError(_, info))
        if info.message().contains("error in your SQL syntax"))
}

/// Locks the row of model `M` with `key`: the model shortcuts
/// `find_exclusive` and `find_shared`.
pub(crate) fn find_locked<M, C, S>(conn: &mut C, key: M::Key) -> Result<M, OccError>
where
    M: crate::Optimistic + diesel::Selectable<C::Backend>,
    C: RowLocking,
    crate::model::FindStatement<M, C::Backend, RowLock<S, Wait, AllTables>>:
        LoadQuery<'static, C, M>,
{
    let found = lock_statement(conn, Wait, |dialect, conn| {
        let lock = RowLock {
            dialect,
            of: AllTables,
            _mode: PhantomData::<(S, Wait)>,
        };
        crate::model::find_optional::<M, C, _>(conn, key.clone(), lock)
    });
    match found {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(crate::model::not_found::<M>(&key)),
        Err(LockError::NotInTransaction) => Err(OccError::NotInTransaction {
            operation: format!(
                "locking the row of {} with {}",
                M::TABLE_NAME,
                M::describe_key(&key)
            ),
        }),
        Err(LockError::Occ(e)) => Err(e),
    }
}
