//! Running a lock: the steps around every locking statement, and what a
//! query must offer to take a lock clause.

use core::marker::PhantomData;

use diesel::query_builder::QueryFragment;
use diesel::query_dsl::methods::LockingDsl;
use diesel::{QueryResult, Selectable};

use super::clause::{LockTarget, RowLock, Strength, WaitPolicy};
use crate::backend::sealed::LockBackend;
use crate::backend::Dialect;
use crate::error::OccError;
use crate::exec::{depth, Exec, Load};
use crate::model::Optimistic;
use crate::query::{find_statement, FindStatement};
use crate::trace::{self, Operation};
use crate::transaction::Unfinished;

/// The row of model `M` with a given key, to lock: what
/// [`OptimisticDsl::lock`](crate::OptimisticDsl::lock) returns. Lock it with
/// `.exclusive()`, `.shared()` and the other [`LockDsl`](crate::LockDsl)
/// methods.
pub struct ByKey<M: Optimistic> {
    pub(crate) key: M::Key,
}

impl<M: Optimistic> core::fmt::Debug for ByKey<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ByKey")
            .field("table", &M::TABLE_NAME)
            .field("key", &self.key)
            .finish()
    }
}

impl<M: Optimistic> Clone for ByKey<M> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
        }
    }
}

/// A query that takes a lock clause: every query diesel can lock, and a
/// model's row by key, which also knows how to say that it is missing.
#[diagnostic::on_unimplemented(
    message = "this query cannot take a row lock",
    note = "diesel locks select queries without DISTINCT, GROUP BY or HAVING, and not boxed ones"
)]
pub trait LockableQuery<L, DB>: Sized {
    /// The query with the clause.
    type Locked;
    /// Appends `lock`.
    fn lock_with(self, lock: L) -> Self::Locked;
    /// The table and key of the one row this query reads, for errors; `None`
    /// where the query is described by its SQL.
    fn row(&self) -> Option<(&'static str, String)> {
        None
    }
}

// Both impls name occ's own clause: for any other clause type another crate
// could implement diesel's `LockingDsl` for `ByKey`, and the two would overlap.
impl<Q, S, W, O, DB> LockableQuery<RowLock<S, W, O>, DB> for Q
where
    Q: LockingDsl<RowLock<S, W, O>>,
{
    type Locked = Q::Output;
    fn lock_with(self, lock: RowLock<S, W, O>) -> Self::Locked {
        LockingDsl::with_lock(self, lock)
    }
}

impl<M, S, W, O, DB> LockableQuery<RowLock<S, W, O>, DB> for ByKey<M>
where
    M: Optimistic + Selectable<DB>,
    DB: diesel::backend::Backend,
{
    type Locked = FindStatement<M, DB, RowLock<S, W, O>>;
    fn lock_with(self, lock: RowLock<S, W, O>) -> Self::Locked {
        find_statement::<M, DB, _>(self.key, lock)
    }
    fn row(&self) -> Option<(&'static str, String)> {
        Some((M::TABLE_NAME, M::describe_key(&self.key)))
    }
}

/// What a lock builder holds: the query, its wait policy and the tables it
/// locks; the strength is a type.
pub(crate) struct Parts<'a, Q, S, W, O> {
    pub(crate) query: &'a Q,
    pub(crate) wait: &'a W,
    pub(crate) of: &'a O,
    pub(crate) strength: PhantomData<S>,
}

impl<Q, S, W, O> Parts<'_, Q, S, W, O>
where
    Q: Clone,
    W: WaitPolicy,
    O: LockTarget,
{
    /// The query with its lock clause, in `dialect`.
    fn statement<DB>(&self, dialect: Dialect) -> Q::Locked
    where
        Q: LockableQuery<RowLock<S, W, O>, DB>,
    {
        self.query
            .clone()
            .lock_with(RowLock::new(dialect, self.of.clone()))
    }

    /// The locked query as `diesel::debug_query` prints it, with its binds,
    /// in the dialect backend `DB` renders when no connection says otherwise.
    pub(crate) fn debug_sql<DB>(&self) -> String
    where
        DB: LockBackend,
        Q: LockableQuery<RowLock<S, W, O>, DB>,
        Q::Locked: QueryFragment<DB>,
    {
        let statement = self.statement::<DB>(DB::default_dialect());
        diesel::debug_query::<DB, _>(&statement).to_string()
    }

    /// The locked query's SQL without its binds, for errors.
    fn sql<DB>(&self) -> String
    where
        DB: LockBackend,
        Q: LockableQuery<RowLock<S, W, O>, DB>,
        Q::Locked: QueryFragment<DB>,
    {
        let sql = self.debug_sql::<DB>();
        match sql.split_once(" -- binds") {
            Some((sql, _)) => sql.to_owned(),
            None => sql,
        }
    }

    /// The error for a locked query that had to find a row and found none.
    #[cfg_attr(
        not(any(
            feature = "postgres-backend",
            feature = "mysql-backend",
            feature = "mariadb-backend"
        )),
        allow(dead_code)
    )]
    pub(crate) fn missing<DB>(&self) -> OccError
    where
        DB: LockBackend,
        Q: LockableQuery<RowLock<S, W, O>, DB>,
        Q::Locked: QueryFragment<DB>,
    {
        match self.query.row() {
            Some((table, key)) => OccError::NotFound { table, key },
            None => OccError::NoRow {
                query: Some(self.sql::<DB>()),
            },
        }
    }

    /// The steps around every locking statement: refuse outside a transaction
    /// (sending nothing), learn the dialect, set and restore a timeout,
    /// classify the error. `fetch` says which rows to read.
    #[cfg_attr(
        not(any(
            feature = "postgres-backend",
            feature = "mysql-backend",
            feature = "mariadb-backend"
        )),
        allow(dead_code)
    )]
    pub(crate) async fn run<K, C, U>(&self, conn: &mut C, fetch: Fetch) -> Result<Rows<U>, OccError>
    where
        C: Exec<K, Db: LockBackend> + Send,
        S: Strength,
        Q: LockableQuery<RowLock<S, W, O>, C::Db>,
        Q::Locked: QueryFragment<C::Db> + Load<C, K, U>,
    {
        let table = self.query.row().map(|(table, _)| table);
        Operation::lock::<C::Db>(table, S::MODE, W::MODE, self.wait.timeout())
            .run(self.steps(conn, fetch))
            .await
    }

    /// [`run`](Self::run)'s steps.
    async fn steps<K, C, U>(&self, conn: &mut C, fetch: Fetch) -> Result<Rows<U>, OccError>
    where
        C: Exec<K, Db: LockBackend> + Send,
        Q: LockableQuery<RowLock<S, W, O>, C::Db>,
        Q::Locked: QueryFragment<C::Db> + Load<C, K, U>,
    {
        if depth(conn)? == 0 {
            let operation = match self.query.row() {
                Some((table, key)) => format!("locking the row of {table} with {key}"),
                None => format!("`{}`", self.sql::<C::Db>()),
            };
            return Err(OccError::NotInTransaction {
                operation,
                run_in: <C as Exec<K>>::TRANSACTION_HINT,
            });
        }
        // A timeout set and not yet put back must not outlive a future
        // dropped while the lock waits.
        let mut guard = Unfinished::<K, C>::new(conn);
        let locked = self.locked(guard.conn(), fetch).await;
        guard.done();
        let (result, dialect) = locked?;
        result.map_err(|e| {
            // On PostgreSQL a lock timeout under NOWAIT is a real one (a
            // table lock waited for), and stays what it is.
            let e = C::Db::lock_failure(dialect, W::NOWAIT, OccError::from(e));
            trace::failed(&e);
            e
        })
    }

    /// The locking statement between its timeout's set and restore; the
    /// statement's own result, and the dialect it ran in.
    async fn locked<K, C, U>(
        &self,
        conn: &mut C,
        fetch: Fetch,
    ) -> Result<(QueryResult<Rows<U>>, Dialect), OccError>
    where
        C: Exec<K, Db: LockBackend> + Send,
        Q: LockableQuery<RowLock<S, W, O>, C::Db>,
        Q::Locked: Load<C, K, U>,
    {
        let mut dialect = C::Db::dialect(conn, false).await?;
        let saved = match self.wait.timeout() {
            Some(timeout) => Some(C::Db::set_lock_timeout(conn, timeout).await?),
            None => None,
        };
        let mut result = fetch.rows(self.statement(dialect), conn).await;
        // A server of another dialect than last seen (MySQL or MariaDB)
        // rejects a shared lock's syntax: learn its dialect and run it again.
        if C::Db::DIALECTS && matches!(&result, Err(e) if crate::error::is_syntax_error(e)) {
            let actual = C::Db::dialect(conn, true).await?;
            if actual != dialect {
                dialect = actual;
                result = fetch.rows(self.statement(dialect), conn).await;
            }
        }
        if let Some(saved) = saved {
            let aborted = matches!(result, Err(diesel::result::Error::DatabaseError(..)));
            let restored = C::Db::restore_lock_timeout(conn, saved, aborted).await;
            if result.is_ok() {
                restored?;
            }
        }
        Ok((result, dialect))
    }
}

/// Which rows a lock terminal reads.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )),
    allow(dead_code)
)]
pub(crate) enum Fetch {
    /// Every row.
    All,
    /// The first row, if any.
    First,
}

/// What [`Fetch`] read.
#[cfg_attr(
    not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )),
    allow(dead_code)
)]
pub(crate) enum Rows<U> {
    All(Vec<U>),
    First(Option<U>),
}

#[cfg_attr(
    not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )),
    allow(dead_code)
)]
impl Fetch {
    async fn rows<K, C, U, L: Load<C, K, U>>(self, query: L, conn: &mut C) -> QueryResult<Rows<U>> {
        Ok(match self {
            Self::All => Rows::All(query.load_all(conn).await?),
            Self::First => Rows::First(query.load_first(conn).await?),
        })
    }
}

#[cfg_attr(
    not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )),
    allow(dead_code)
)]
impl<U> Rows<U> {
    /// Every row read.
    pub(crate) fn all(self) -> Vec<U> {
        match self {
            Self::All(rows) => rows,
            Self::First(row) => row.into_iter().collect(),
        }
    }

    /// The first row read.
    pub(crate) fn first(self) -> Option<U> {
        match self {
            Self::All(rows) => rows.into_iter().next(),
            Self::First(row) => row,
        }
    }
}
