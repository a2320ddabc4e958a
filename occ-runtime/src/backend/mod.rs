//! What occ needs from each backend's connection: transaction depth, a
//! transaction at an isolation level, the lock dialect and a lock timeout that
//! lasts one statement. One file per backend below; the rest of the runtime
//! sees only the traits here.

use core::future::Future;
use core::time::Duration;

use diesel::connection::LoadConnection;
use diesel::Connection;

use crate::error::OccError;
use crate::exec::Exec;

#[cfg(feature = "async")]
mod asynchronous;
#[cfg(feature = "mariadb-backend")]
mod mariadb;
#[cfg(feature = "mysql-backend")]
mod mysql;
#[cfg(any(feature = "mysql-backend", feature = "mariadb-backend"))]
mod mysql_like;
#[cfg(feature = "postgres-backend")]
mod pg;
#[cfg(feature = "r2d2")]
mod pooled;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "async")]
pub use self::asynchronous::AsyncOccConnection;

/// A transaction isolation level for [`RetryPolicy::isolation`](crate::RetryPolicy::isolation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isolation {
    /// `READ COMMITTED` (PostgreSQL's default).
    ReadCommitted,
    /// `REPEATABLE READ` (InnoDB's default; snapshot isolation on PostgreSQL).
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::ReadCommitted => "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Self::RepeatableRead => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            Self::Serializable => "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        }
    }
}

/// Where a backend takes the isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationAt {
    /// As the transaction's first statement (PostgreSQL).
    First,
    /// Before the transaction starts; inside one it is refused (MySQL).
    Before,
    /// Nowhere: every transaction is serializable (SQLite), so any level
    /// asked for is met.
    Always,
}

/// Which SQL a row lock is written in. PostgreSQL and diesel's MariaDB
/// backend have one each; the MySQL backend serves two dialects that disagree on shared locks (`FOR SHARE` on MySQL 8,
/// `LOCK IN SHARE MODE` on MariaDB), told apart at run time. Public in a
/// private module: the sealed traits name it, users cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Postgres,
    Mysql,
    MariaDb,
}

/// A sync diesel connection occ runs transactions on: `SqliteConnection`,
/// `PgConnection`, `MysqlConnection` and `MariadbConnection`, as the enabled
/// features allow, and r2d2's pooled ones (feature `r2d2`). Sealed: occ
/// knows what each backend needs.
#[diagnostic::on_unimplemented(
    message = "occ does not run on `{Self}`",
    label = "needs a diesel connection of a backend occ's features enable",
    note = "occ runs on `SqliteConnection`, `PgConnection`, `MysqlConnection` and `MariadbConnection` with its features `sqlite`, `postgres`, `mysql` and `mariadb`, and on their r2d2 pooled connections with its feature `r2d2`, e.g. `occ = {{ version = \"0.1\", features = [\"postgres\", \"r2d2\"] }}`"
)]
pub trait OccConnection: Connection + LoadConnection + sealed::sync::Sealed {}

/// A connection, sync or async, whose backend has row locks:
/// `PgConnection`, `MysqlConnection` (MySQL 8 and MariaDB),
/// `MariadbConnection` and r2d2's pooled ones; `AsyncPgConnection`,
/// `AsyncMysqlConnection`, `AsyncMariadbConnection` and the pooled
/// connections of diesel-async's deadpool and bb8 pools. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no row locks",
    label = "row locks need a PostgreSQL or MySQL/MariaDB connection",
    note = "a pool's connection has row locks when occ's feature for that pool is on: `r2d2` for diesel's r2d2 pool, `deadpool` or `bb8` for diesel-async's pools, e.g. `occ = {{ version = \"0.1\", features = [\"postgres\", \"r2d2\"] }}`",
    note = "SQLite locks the whole database, not rows: run the read and the write in `conn.immediate_transaction(..)`, which takes SQLite's write lock up front, or use a versioned write (`update_versioned`) instead"
)]
pub trait RowLocking: Send {
    /// How statements are sent on this connection: sync or async. It
    /// decides whether a lock terminal returns its result or a future of
    /// it ([`RunLocked`](crate::lock::RunLocked)).
    type Kind;
}

/// No connection, of no kind. In a build without a server backend, `Kind`
/// would otherwise have no impl at all, and rustc would report a lock
/// terminal on SQLite as a method that does not exist instead of with
/// `RowLocking`'s message; and with one kind of connection, rustc would name
/// that kind in the message, which then read differently per feature set.
/// `RunLocked` has an impl of this kind for the same reasons.
#[allow(dead_code)]
enum NoConnection {}

#[allow(dead_code)]
pub(crate) enum NoKind {}

impl sealed::Kind for NoConnection {
    type Kind = NoKind;
}

// One impl over every connection that says its kind, marked
// `do_not_recommend`: a connection without row locks is reported as the
// missing `RowLocking` with the message above, without a list of the
// connections that have them (which differs per feature set).
#[diagnostic::do_not_recommend]
#[doc(hidden)]
impl<C: sealed::Kind + Send> RowLocking for C {
    type Kind = <C as sealed::Kind>::Kind;
}

/// The hooks each backend implements, generic over how statements are sent.
/// Public traits in a private module: they bound the public traits above,
/// but nobody outside can name or implement them.
pub(crate) mod sealed {
    use super::{Dialect, Duration, Exec, Future, IsolationAt, OccError};

    /// How statements are sent on a row-locking connection: `Blocking` or
    /// `NonBlocking`, which decides what a lock terminal returns. Only
    /// connections with row locks say; the message is `RowLocking`'s, as a
    /// lock terminal's return type asks for this first.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` has no row locks",
        label = "row locks need a PostgreSQL or MySQL/MariaDB connection",
        note = "a pool's connection has row locks when occ's feature for that pool is on: `r2d2` for diesel's r2d2 pool, `deadpool` or `bb8` for diesel-async's pools, e.g. `occ = {{ version = \"0.1\", features = [\"postgres\", \"r2d2\"] }}`",
        note = "SQLite locks the whole database, not rows: run the read and the write in `conn.immediate_transaction(..)`, which takes SQLite's write lock up front, or use a versioned write (`update_versioned`) instead"
    )]
    pub trait Kind {
        /// The kind.
        type Kind;
    }

    /// The supertraits of [`OccConnection`](super::OccConnection), under
    /// the name rustdoc shows for them: what occ sends statements with.
    pub mod sync {
        use super::Hooks;
        use crate::exec::{Blocking, Exec};

        /// A connection occ sends statements on synchronously.
        pub trait Sealed: Exec<Blocking, Db: Hooks> {}
        impl<C: Exec<Blocking, Db: Hooks>> Sealed for C {}
    }

    /// The supertraits of [`AsyncOccConnection`](super::AsyncOccConnection),
    /// under the name rustdoc shows for them.
    #[cfg(feature = "async")]
    pub mod nonblocking {
        use super::Hooks;
        use crate::exec::{Exec, NonBlocking};

        /// A connection occ sends statements on asynchronously.
        pub trait Sealed: Exec<NonBlocking, Db: Hooks> {}
        impl<C: Exec<NonBlocking, Db: Hooks>> Sealed for C {}
    }

    /// What every backend tells the transaction code.
    pub trait Hooks: diesel::backend::Backend {
        /// Where this backend takes `SET TRANSACTION ISOLATION LEVEL`.
        const ISOLATION: IsolationAt;

        /// What to send after a `ROLLBACK` that repairs a connection, to undo
        /// session settings an interrupted lock may have left; none for most.
        const RESET: Option<&'static str> = None;

        /// Whether a write can hand rows back from inside a statement
        /// (`RETURNING` from a joined `UPDATE`, a write in a `WITH`): then a
        /// batch of versioned writes is one statement per chunk, and a
        /// versioned update that finds another version reads the current
        /// row in the same statement.
        const WRITES_RETURN_ROWS: bool = false;

        /// The statement that opens a transaction holding the database's
        /// write lock from its start, for a backend without row locks
        /// (SQLite's `BEGIN IMMEDIATE`): how `modify` locks a row there.
        /// `None` where a row lock (`FOR UPDATE`) does it.
        const BEGIN_TO_WRITE: Option<&'static str> = None;

        /// OpenTelemetry's `db.system.name` for this backend's server.
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        fn system_name() -> &'static str;

        /// The server's own code for `error` (PostgreSQL's SQLSTATE, a
        /// MySQL/MariaDB error number), as far as occ's classification
        /// tells it: diesel hands over neither.
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        fn status_code(_error: &OccError) -> Option<&'static str> {
            None
        }
    }

    /// A diesel backend with row locks.
    pub trait LockBackend:
        Hooks + diesel::backend::Backend<QueryBuilder: Default> + Default
    {
        /// The dialect its SQL is rendered in when no connection says otherwise.
        fn default_dialect() -> Dialect;

        /// Whether this backend's servers speak more than one dialect, told
        /// apart at run time: then a lock the server rejects as a syntax
        /// error asks the server its dialect and runs again.
        const DIALECTS: bool = false;

        /// A failed lock's error as the caller should read it: `nowait` says
        /// the lock asked for `NOWAIT`, `dialect` is the server's.
        fn lock_failure(_dialect: Dialect, _nowait: bool, error: OccError) -> OccError {
            error
        }

        /// The dialect of `conn`'s server; `refresh` asks the server again
        /// instead of trusting what was seen before.
        fn dialect<K, C: Exec<K, Db = Self> + Send>(
            conn: &mut C,
            refresh: bool,
        ) -> impl Future<Output = Result<Dialect, OccError>> + Send;

        /// Sets the lock wait timeout for the next statement; returns what
        /// `restore_lock_timeout` needs.
        fn set_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
            conn: &mut C,
            timeout: Duration,
        ) -> impl Future<Output = Result<String, OccError>> + Send;

        /// Puts back the timeout saved by `set_lock_timeout`. `aborted` says
        /// the locking statement failed in the database, which on PostgreSQL
        /// leaves the transaction refusing every statement until rollback.
        fn restore_lock_timeout<K, C: Exec<K, Db = Self> + Send>(
            conn: &mut C,
            saved: String,
            aborted: bool,
        ) -> impl Future<Output = Result<(), OccError>> + Send;
    }
}
