//! The lock clause: what a lock's type parameters mean. Each backend's module
//! renders it as SQL (`backend/pg.rs`, `backend/mysql.rs`).

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

/// How strongly a lock holds its rows: [`Exclusive`], [`Shared`],
/// [`NoKeyExclusive`] or [`KeyShared`]. Sealed: implemented by occ only.
pub trait Strength {
    /// The strength's name in `occ.lock.mode` (feature `tracing`).
    #[doc(hidden)]
    const MODE: &'static str;
    #[doc(hidden)]
    fn sealed(_: seal::Seal);
}
impl Strength for Exclusive {
    const MODE: &'static str = "for_update";
    fn sealed(_: seal::Seal) {}
}
impl Strength for Shared {
    const MODE: &'static str = "for_share";
    fn sealed(_: seal::Seal) {}
}
impl Strength for NoKeyExclusive {
    const MODE: &'static str = "for_no_key_update";
    fn sealed(_: seal::Seal) {}
}
impl Strength for KeyShared {
    const MODE: &'static str = "for_key_share";
    fn sealed(_: seal::Seal) {}
}

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
    /// What follows the strength in `occ.lock.mode`.
    #[doc(hidden)]
    const MODE: &'static str = "";
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
    const MODE: &'static str = "_nowait";
    fn sealed(_: seal::Seal) {}
}
impl WaitPolicy for SkipLocked {
    const SQL: &'static str = " SKIP LOCKED";
    const MODE: &'static str = "_skip_locked";
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

/// The locking clause occ appends to a query. Its SQL depends on the server's
/// dialect, known only at run time, so it has no static query id: diesel then
/// caches the prepared statement by its SQL text.
#[derive(Debug, Clone, Copy)]
pub struct RowLock<S, W, O> {
    // Read only where a MySQL-backend renders a shared lock.
    #[cfg_attr(
        not(any(feature = "mysql-backend", feature = "mariadb-backend")),
        allow(dead_code)
    )]
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
