//! The lock builder users hold: `query.exclusive().nowait()` and the
//! terminals that run it.

use core::marker::PhantomData;
use core::time::Duration;

use diesel::query_builder::{AsQuery, QueryFragment};
use diesel::query_dsl::methods::LimitDsl;
use diesel::Table;

use super::clause::{
    AllTables, Exclusive, KeyShared, LockTarget, NoKeyExclusive, NoWait, Of, RowLock, Shared,
    SkipLocked, Wait, WaitAtMost, WaitPolicy, WaitUnchosen,
};
use super::run::{ByKey, LockableQuery, Parts};
use crate::backend::sealed::LockBackend;
use crate::backend::RowLocking;
#[cfg(doc)]
use crate::error::OccError;
use crate::model::Optimistic;

/// A select query with a row lock; run it inside a transaction with
/// [`load`](Self::load), [`get_result`](Self::get_result),
/// [`optional`](Self::optional) or [`first`](Self::first).
///
/// `S` is the strength, `W` the wait policy and `O` the tables locked: the
/// types in [`occ::lock`](crate::lock). They are part of the type so that
/// what a backend cannot do does not compile.
#[derive(Debug, Clone, Copy)]
#[must_use = "a lock builder does nothing until it runs: call .load(conn), .get_result(conn) or .first(conn)"]
pub struct Locked<Q, S, W = Wait, O = AllTables> {
    pub(crate) query: Q,
    pub(crate) wait: W,
    pub(crate) of: O,
    strength: PhantomData<S>,
}

/// Row-lock builders for every diesel select query (`table`, `table.find(..)`,
/// `table.filter(..).order(..).limit(..)`, joins). Brought in by `occ::prelude`;
/// a model's own row is locked with
/// [`OptimisticDsl::lock`](crate::OptimisticDsl::lock).
///
/// The lock is taken by the terminal method, which refuses to run outside a
/// transaction ([`OccError::NotInTransaction`]). diesel cannot lock boxed
/// queries or queries with `DISTINCT`, `GROUP BY` or `HAVING`.
pub trait LockDsl: Sized {
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

impl<M: Optimistic> LockDsl for ByKey<M> {}

impl<Q, S, W, O> Locked<Q, S, W, O> {
    fn parts(&self) -> Parts<'_, Q, S, W, O> {
        Parts {
            query: &self.query,
            wait: &self.wait,
            of: &self.of,
            strength: PhantomData,
        }
    }
}

impl<Q, S> Locked<Q, S> {
    pub(crate) fn new(query: Q) -> Self {
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
    O: LockTarget,
{
    /// The SQL this lock runs on backend `DB` (`diesel::pg::Pg` or
    /// `diesel::mysql::Mysql`), with its binds, as `diesel::debug_query` prints
    /// it: for logs. A timeout is a setting around the statement, not part of
    /// it. On the MySQL backend a shared lock is spelled as on the server this
    /// process last locked rows on (`LOCK IN SHARE MODE` on MariaDB), MySQL 8's
    /// `FOR SHARE` before any.
    pub fn to_sql<DB>(&self) -> String
    where
        Self: LockSql<DB>,
    {
        <Self as LockSql<DB>>::lock_sql(self)
    }
}

/// A locked query that backend `DB` renders: every [`Locked`] whose query and
/// lock `DB` can write (`diesel::pg::Pg`, `diesel::mysql::Mysql`). The bound
/// of [`Locked::to_sql`].
pub trait LockSql<DB> {
    #[doc(hidden)]
    fn lock_sql(&self) -> String;
}

// Hidden: its where-clauses are occ's query types; the trait's docs say what
// implements it.
#[doc(hidden)]
impl<DB, Q, S, W, O> LockSql<DB> for Locked<Q, S, W, O>
where
    DB: LockBackend,
    W: WaitPolicy,
    O: LockTarget,
    Q: Clone + LockableQuery<RowLock<S, W, O>, DB>,
    Q::Locked: QueryFragment<DB>,
{
    fn lock_sql(&self) -> String {
        self.parts().debug_sql::<DB>()
    }
}

impl<Q, S, W, O> Locked<Q, S, W, O> {
    /// Runs the query with its lock and returns every row: `Result` on a
    /// sync connection, a future to await on a diesel-async one.
    pub fn load<'c, U, C>(self, conn: &'c mut C) -> <Self as RunLocked<C, U, C::Kind>>::Many<'c>
    where
        C: RowLocking,
        Self: RunLocked<C, U, C::Kind>,
    {
        self.run_load(conn)
    }

    /// Same as [`load`](Self::load).
    pub fn get_results<'c, U, C>(
        self,
        conn: &'c mut C,
    ) -> <Self as RunLocked<C, U, C::Kind>>::Many<'c>
    where
        C: RowLocking,
        Self: RunLocked<C, U, C::Kind>,
    {
        self.run_load(conn)
    }

    /// Runs the query with its lock and returns the first row. No row is
    /// [`OccError::NotFound`] for a model's row
    /// ([`OptimisticDsl::lock`](crate::OptimisticDsl::lock)),
    /// [`OccError::NoRow`] for any other query: both answer
    /// [`is_not_found`](OccError::is_not_found).
    pub fn get_result<'c, U, C>(
        self,
        conn: &'c mut C,
    ) -> <Self as RunLocked<C, U, C::Kind>>::One<'c>
    where
        C: RowLocking,
        Self: RunLocked<C, U, C::Kind>,
    {
        self.run_get_result(conn)
    }

    /// Runs the query with its lock and returns the first row, or `None` if
    /// there is none.
    pub fn optional<'c, U, C>(
        self,
        conn: &'c mut C,
    ) -> <Self as RunLocked<C, U, C::Kind>>::Maybe<'c>
    where
        C: RowLocking,
        Self: RunLocked<C, U, C::Kind>,
    {
        self.run_optional(conn)
    }

    /// Adds `LIMIT 1`, locks and returns that row; no row is
    /// [`OccError::NoRow`].
    #[allow(clippy::type_complexity)]
    pub fn first<'c, U, C>(
        self,
        conn: &'c mut C,
    ) -> <Locked<Q::Output, S, W, O> as RunLocked<C, U, C::Kind>>::One<'c>
    where
        C: RowLocking,
        Q: LimitDsl,
        Locked<Q::Output, S, W, O>: RunLocked<C, U, C::Kind>,
    {
        Locked {
            query: self.query.limit(1),
            wait: self.wait,
            of: self.of,
            strength: PhantomData::<S>,
        }
        .run_get_result(conn)
    }
}

/// What a lock builder's terminals need on connection `C` loading rows `U`.
/// Kept apart from the methods so that a connection without row locks is
/// reported by its missing [`RowLocking`] first.
///
/// `K` is the connection's [`RowLocking::Kind`]. Every [`Locked`] implements
/// it for every connection with row locks (`PgConnection`, `MysqlConnection`,
/// r2d2's pooled ones; `AsyncPgConnection`, `AsyncMysqlConnection` and the
/// connections of deadpool and bb8) whose backend renders the lock, when `U`
/// is what the selection loads. On a sync connection the terminals return
/// `Result<_, OccError>`; on an async one a `Send` future of it, to `.await`.
#[diagnostic::on_unimplemented(
    message = "this locked query cannot be loaded on `{C}`",
    label = "needs a connection with row locks, and a row type that matches the selection",
    note = "where the connection has row locks, the row type is what does not fit: load a `Selectable` model with `.select(Model::as_select())`, or name the Rust types of the selected columns, e.g. `(i32, String)` for `.select((id, name))`",
    note = "where it has none, the error beside this one says why"
)]
pub trait RunLocked<C, U, K>: Sized {
    /// What [`Locked::load`] returns: `Result<Vec<U>, OccError>`, or a
    /// future of it.
    type Many<'c>
    where
        C: 'c;
    /// What [`Locked::get_result`] returns: `Result<U, OccError>`, or a
    /// future of it.
    type One<'c>
    where
        C: 'c;
    /// What [`Locked::optional`] returns: `Result<Option<U>, OccError>`,
    /// or a future of it.
    type Maybe<'c>
    where
        C: 'c;
    /// Every row.
    fn run_load(self, conn: &mut C) -> Self::Many<'_>;
    /// The first row, or the error that says which one is missing.
    fn run_get_result(self, conn: &mut C) -> Self::One<'_>;
    /// The first row, if any.
    fn run_optional(self, conn: &mut C) -> Self::Maybe<'_>;
}

// One impl per kind over every row-locking connection of that kind, marked
// `do_not_recommend`: a connection without row locks is then reported as the
// missing `RowLocking` and `RunLocked` with their own messages, the same
// whichever backends are compiled in. Per-connection impls made rustc list
// the impls that exist (different per feature set) or, with one backend,
// infer that connection and report a type mismatch instead. Both run the
// same lock steps (`Parts::run`); the sync one drives them to completion,
// the async one returns them as a `Send` future.
//
// Without a server backend nothing has row locks, and the impls are left
// out: rustc would otherwise chase `QueryFragment<_>` through diesel's impls
// for a clause no backend renders until it overflows (E0275), beside the
// messages.
// An impl for no connection (see `backend::NoKind`): with it, rustc reports
// a lock terminal on SQLite with the messages above, the same in every
// feature set, instead of as a method that cannot be called (without a
// server backend) or naming the one kind of connection compiled in.
mod no_connection {
    use super::{Locked, RunLocked};
    use crate::backend::NoKind;
    use crate::error::OccError;

    /// Implemented by no connection.
    pub trait NoRowLocks {}

    macro_rules! never {
        ($kind:ty) => {
            #[diagnostic::do_not_recommend]
            #[doc(hidden)]
            impl<C: NoRowLocks, U, Q, S, W, O> RunLocked<C, U, $kind> for Locked<Q, S, W, O> {
                type Many<'c>
                    = Result<Vec<U>, OccError>
                where
                    C: 'c;
                type One<'c>
                    = Result<U, OccError>
                where
                    C: 'c;
                type Maybe<'c>
                    = Result<Option<U>, OccError>
                where
                    C: 'c;

                fn run_load(self, _: &mut C) -> Self::Many<'_> {
                    unreachable!("no connection implements NoRowLocks")
                }

                fn run_get_result(self, _: &mut C) -> Self::One<'_> {
                    unreachable!("no connection implements NoRowLocks")
                }

                fn run_optional(self, _: &mut C) -> Self::Maybe<'_> {
                    unreachable!("no connection implements NoRowLocks")
                }
            }
        };
    }

    never!(NoKind);
    // Without a server backend, a second kind keeps rustc from naming the
    // first.
    #[cfg(not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )))]
    never!(crate::exec::Blocking);
}

#[cfg(any(
    feature = "postgres-backend",
    feature = "mysql-backend",
    feature = "mariadb-backend"
))]
mod server {
    use diesel::query_builder::QueryFragment;

    use super::{LockTarget, LockableQuery, Locked, RowLock, RunLocked, WaitPolicy};
    use crate::backend::sealed::LockBackend;
    use crate::error::OccError;
    use crate::exec::{block_on, Blocking, Exec, Load};
    use crate::lock::clause::Strength;
    use crate::lock::run::{Fetch, Rows};

    #[diagnostic::do_not_recommend]
    #[doc(hidden)]
    impl<C, Q, S, W, O, U> RunLocked<C, U, Blocking> for Locked<Q, S, W, O>
    where
        C: Exec<Blocking, Db: LockBackend> + Send,
        S: Strength,
        W: WaitPolicy,
        O: LockTarget,
        Q: Clone + LockableQuery<RowLock<S, W, O>, C::Db>,
        Q::Locked: Load<C, Blocking, U> + QueryFragment<C::Db>,
    {
        type Many<'c>
            = Result<Vec<U>, OccError>
        where
            C: 'c;
        type One<'c>
            = Result<U, OccError>
        where
            C: 'c;
        type Maybe<'c>
            = Result<Option<U>, OccError>
        where
            C: 'c;

        fn run_load(self, conn: &mut C) -> Self::Many<'_> {
            block_on(self.parts().run(conn, Fetch::All)).map(Rows::all)
        }

        fn run_get_result(self, conn: &mut C) -> Self::One<'_> {
            let parts = self.parts();
            block_on(parts.run(conn, Fetch::First))?
                .first()
                .ok_or_else(|| parts.missing::<C::Db>())
        }

        fn run_optional(self, conn: &mut C) -> Self::Maybe<'_> {
            block_on(self.parts().run(conn, Fetch::First)).map(Rows::first)
        }
    }

    #[cfg(feature = "async")]
    mod nonblocking {
        use core::future::Future;
        use core::pin::Pin;

        use diesel::query_builder::QueryFragment;
        use diesel_async::methods::LoadQuery;
        use diesel_async::AsyncConnection;

        use super::{LockTarget, LockableQuery, Locked, RowLock, RunLocked, Strength, WaitPolicy};
        use crate::backend::sealed::LockBackend;
        use crate::error::OccError;
        use crate::exec::{AsyncLoad, NonBlocking, TextQuery, TextRow};
        use crate::lock::run::{Fetch, Rows};

        /// A lock terminal's future on a diesel-async connection.
        type Pending<'c, T> = Pin<Box<dyn Future<Output = Result<T, OccError>> + Send + 'c>>;

        // Bounded by diesel-async's own traits and `AsyncLoad`, whose futures
        // are declared `Send`, not by occ's `Exec`: rustc then proves the
        // whole `Send`.
        #[diagnostic::do_not_recommend]
        #[doc(hidden)]
        impl<C, Q, S, W, O, U> RunLocked<C, U, NonBlocking> for Locked<Q, S, W, O>
        where
            C: AsyncConnection<Backend: LockBackend>,
            TextQuery: LoadQuery<'static, C, TextRow>,
            W: WaitPolicy + Send + Sync + 'static,
            O: LockTarget + Send + Sync + 'static,
            S: Strength + Send + Sync + 'static,
            Q: Clone + Send + Sync + 'static + LockableQuery<RowLock<S, W, O>, C::Backend>,
            Q::Locked: AsyncLoad<C, U> + QueryFragment<C::Backend> + Send + 'static,
            U: Send + 'static,
        {
            type Many<'c>
                = Pending<'c, Vec<U>>
            where
                C: 'c;
            type One<'c>
                = Pending<'c, U>
            where
                C: 'c;
            type Maybe<'c>
                = Pending<'c, Option<U>>
            where
                C: 'c;

            fn run_load(self, conn: &mut C) -> Self::Many<'_> {
                Box::pin(async move {
                    self.parts()
                        .run::<NonBlocking, _, _>(conn, Fetch::All)
                        .await
                        .map(Rows::all)
                })
            }

            fn run_get_result(self, conn: &mut C) -> Self::One<'_> {
                Box::pin(async move {
                    let parts = self.parts();
                    parts
                        .run::<NonBlocking, _, _>(conn, Fetch::First)
                        .await?
                        .first()
                        .ok_or_else(|| parts.missing::<C::Backend>())
                })
            }

            fn run_optional(self, conn: &mut C) -> Self::Maybe<'_> {
                Box::pin(async move {
                    self.parts()
                        .run::<NonBlocking, _, _>(conn, Fetch::First)
                        .await
                        .map(Rows::first)
                })
            }
        }
    }
}
