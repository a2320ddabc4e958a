//! One error type for everything occ does, and the one place where database
//! errors are classified.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Everything that can go wrong in a versioned write, a row lock or a retry.
///
/// Every diesel error that flows through occ is classified on the way in
/// (`From<diesel::result::Error>`), so callers match on what happened instead of
/// parsing backend messages. Variants that wrap a database error keep it whole
/// as their [`source`](std::error::Error::source), and their own message names
/// only the class, so a reporter that prints the chain (anyhow's `{:#}`,
/// eyre) prints the database's words once: `deadlock: deadlock detected`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OccError {
    /// A versioned write found the row at another version: somebody else wrote it
    /// since it was read. Nothing was written.
    #[error(
        "version conflict on {table} ({key}): expected version {expected}, found {actual}; \
         reload the row and apply the change again"
    )]
    Conflict {
        /// The table's name as written in `table!`.
        table: &'static str,
        /// The row's key, as `column = value` pairs.
        key: String,
        /// The version the write expected (the one in memory).
        expected: String,
        /// The version the database holds now.
        actual: String,
    },

    /// The row does not exist (any more): a versioned write, a reload or a locked
    /// find found no row with this key.
    #[error("no row in {table} with {key}: it was deleted or never existed")]
    NotFound {
        /// The table's name as written in `table!`.
        table: &'static str,
        /// The row's key, as `column = value` pairs.
        key: String,
    },

    /// A query that must return a row (`get_result`, `first`) found none:
    /// diesel's [`NotFound`](DieselError::NotFound), converted with `From` or
    /// `?`, or a locked query's. A model's row locked by key reports
    /// [`NotFound`](Self::NotFound) instead; [`is_not_found`](Self::is_not_found)
    /// answers both.
    #[error("the query found no row{}", query.as_deref().map(|q| format!(": {q}")).unwrap_or_default())]
    NoRow {
        /// The locked query's SQL, without its bind values; `None` where the
        /// row was missing from a query occ did not build (diesel's `NotFound`).
        query: Option<String>,
    },

    /// A versioned write matched more than one row: the model's key is not unique
    /// in the database. Declare the table's real key in `#[diesel(primary_key(...))]`.
    /// The statement wrote every row it matched: outside a transaction that
    /// is committed (`update_versioned_all_or_nothing` rolls its batch back);
    /// inside one, roll the transaction back.
    #[error(
        "versioned write on {table} ({key}) matched {rows} rows: the key is not unique; \
         declare the table's real key in #[diesel(primary_key(...))]"
    )]
    KeyNotUnique {
        /// The table's name as written in `table!`.
        table: &'static str,
        /// The key the write used.
        key: String,
        /// How many rows it matched.
        rows: usize,
    },

    /// A guarded update (`update_where`) found the row, and its guard false
    /// on the row as it is now: the condition the change depends on (enough
    /// stock, a state it must be in) does not hold. Nothing was written; not
    /// retried, as the same guard on the same row fails again.
    #[error(
        "the guard of the update on {table} ({key}) does not hold on the row as it is now; \
         nothing was written"
    )]
    GuardFailed {
        /// The table's name as written in `table!`.
        table: &'static str,
        /// The row's key, as `column = value` pairs.
        key: String,
    },

    /// A batch of versioned writes holds the row with this key more than
    /// once. Nothing was sent to the database: write each row once.
    #[error("the batch for {table} holds the row with {key} more than once; write each row once")]
    DuplicateInBatch {
        /// The table's name as written in `table!`.
        table: &'static str,
        /// The key found twice.
        key: String,
    },

    /// The database chose this transaction as the victim of a deadlock and rolled
    /// it back. Running the whole transaction again is safe.
    #[error("deadlock")]
    Deadlock(#[source] DieselError),

    /// A lock with `NOWAIT` found the row locked by another transaction.
    #[error("lock not available")]
    LockNotAvailable(#[source] DieselError),

    /// A lock wait ran into its timeout (`.timeout(..)`, PostgreSQL's
    /// `lock_timeout`, InnoDB's `innodb_lock_wait_timeout`).
    #[error("lock timeout")]
    LockTimeout(#[source] DieselError),

    /// A statement ran into the session's statement time limit
    /// (PostgreSQL's `statement_timeout`, 57014; MariaDB's
    /// `max_statement_time`, 1969; MySQL's `max_execution_time`, 3024),
    /// whether it was working or waiting for a lock. Not a lock failure and
    /// not retried: the same statement would likely run as long again. The
    /// transaction it ran in is rolled back by occ; the statement did nothing.
    #[error("statement timeout")]
    StatementTimeout(#[source] DieselError),

    /// The database could not serialize this transaction with a concurrent one
    /// (PostgreSQL `40001`). Running the whole transaction again is safe.
    #[error("serialization failure")]
    SerializationFailure(#[source] DieselError),

    /// SQLite could not get its database lock in time (`SQLITE_BUSY`), or a
    /// read snapshot went stale before a write (`SQLITE_BUSY_SNAPSHOT`).
    #[error("database busy")]
    Busy(#[source] DieselError),

    /// A row lock was asked for outside a transaction, where it would be released
    /// as soon as the statement ends. Nothing was sent to the database.
    #[error(
        "{operation} needs an open transaction: a row lock outside one ends with the \
         statement; run it inside {run_in}"
    )]
    NotInTransaction {
        /// What was attempted, e.g. `FOR UPDATE on products`.
        operation: String,
        /// Where to run it: `conn.transaction(..) or occ::retry(..)` on a
        /// sync connection, `occ::retry_async(..)` on an async one.
        run_in: &'static str,
    },

    /// `occ::retry` was called inside an open transaction. A retry must restart
    /// the outermost transaction (after an error PostgreSQL refuses every further
    /// statement in it), so it does not run nested.
    #[error(
        "occ::retry was called inside an open transaction (depth {depth}); call it at \
         the top level so that each attempt is a whole transaction"
    )]
    RetryInsideTransaction {
        /// The transaction depth diesel reported.
        depth: u32,
    },

    /// The connection is gone (lost, closed, the server went away) or cannot
    /// be used again (a transaction failed and so did the rollback that should
    /// have ended it). Open a new connection; a pool discards this one. Not
    /// retried on the same connection.
    #[error("the connection cannot be used again; open a new one")]
    ConnectionBroken(#[source] DieselError),

    /// The connection broke while the transaction was committing, or the
    /// cluster node left the primary component then (Galera): it may or may
    /// not have committed. The same for a write sent outside any
    /// transaction (a plain `update_versioned`, `modify`'s unlocked
    /// attempt), which commits by itself: a primary killed while it ran
    /// may have committed it. Never retried: check what the database holds
    /// before doing it again, or make the transaction safe to repeat.
    #[error("the connection broke during COMMIT: the transaction may or may not have committed")]
    CommitOutcomeUnknown(#[source] DieselError),

    /// This node of a cluster cannot serve now (Galera: not part of the
    /// primary component, 1047 `WSREP has not yet prepared node for
    /// application use`). Try another node, or this one later. Not retried on
    /// the same connection.
    #[error("this database node cannot serve requests now; use another node or wait")]
    NodeUnavailable(#[source] DieselError),

    /// The server takes no writes: a PostgreSQL standby, or a session or
    /// server set read-only (25006 `cannot execute UPDATE in a read-only
    /// transaction`), or a MySQL/MariaDB server started `--read-only`
    /// (1290). The connection reached a replica, or a primary that was
    /// demoted by a failover. Nothing was written. Not retried on the same
    /// connection: open a new one to the primary (a libpq multi-host URL
    /// with `target_session_attrs=read-write` finds it) and run the
    /// transaction again there.
    #[error("read-only server (a replica, or a demoted primary): write through the primary")]
    ReadOnly(#[source] DieselError),

    /// occ's own check failed where the database reported no error: a batch
    /// statement answered with a row it was not sent, or twice (the key in
    /// `#[diesel(primary_key(...))]` is not unique in the database), or occ
    /// broke a rule of its own (a bug in occ: please report it). The message
    /// says which. Nothing was written; not retried.
    #[error("{0}")]
    Internal(String),

    /// Any other database error, unchanged.
    #[error(transparent)]
    Database(DieselError),
}

impl OccError {
    /// True where running the whole transaction again, with fresh reads, can
    /// succeed: [`Conflict`](Self::Conflict), [`Deadlock`](Self::Deadlock),
    /// [`SerializationFailure`](Self::SerializationFailure) and [`Busy`](Self::Busy).
    ///
    /// Lock failures ([`is_lock_failure`](Self::is_lock_failure)) are not in this
    /// set: a caller that used `NOWAIT` or a timeout usually wants to do something
    /// else; `RetryPolicy::retry_lock_failures` opts in.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Conflict { .. }
                | Self::Deadlock(_)
                | Self::SerializationFailure(_)
                | Self::Busy(_)
        )
    }

    /// True for [`LockNotAvailable`](Self::LockNotAvailable) and
    /// [`LockTimeout`](Self::LockTimeout): the row was locked by someone else.
    pub fn is_lock_failure(&self) -> bool {
        matches!(self, Self::LockNotAvailable(_) | Self::LockTimeout(_))
    }

    /// True where the transaction can succeed again, but not on this
    /// connection: [`ConnectionBroken`](Self::ConnectionBroken) (the
    /// connection is gone), [`NodeUnavailable`](Self::NodeUnavailable) (this
    /// cluster node cannot serve now) and [`ReadOnly`](Self::ReadOnly) (the
    /// server is a replica, or a primary demoted by a failover). Take a new
    /// connection, to another node or to the primary, and run the whole
    /// transaction again there. A pool must not hand this one out again:
    /// r2d2 and bb8 test each connection as it is checked out (by default)
    /// and drop one whose server closed it, as a failed-over PostgreSQL
    /// primary does; a server that is only read-only passes that test, so
    /// drop such a connection yourself (deadpool: `Object::take`).
    ///
    /// [`CommitOutcomeUnknown`](Self::CommitOutcomeUnknown) is not in this
    /// set: its transaction may have committed, so check what the database
    /// holds before running it again.
    pub fn needs_new_connection(&self) -> bool {
        matches!(
            self,
            Self::ConnectionBroken(_) | Self::NodeUnavailable(_) | Self::ReadOnly(_)
        )
    }

    /// True for [`Conflict`](Self::Conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// True for [`NotFound`](Self::NotFound) and [`NoRow`](Self::NoRow): the
    /// row asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::NoRow { .. })
    }

    /// A stable snake_case name of the variant, for metrics labels and logs:
    /// `conflict`, `not_found` (also for [`NoRow`](Self::NoRow)),
    /// `key_not_unique`, `guard_failed`, `duplicate_in_batch`, `deadlock`, `lock_not_available`, `lock_timeout`,
    /// `statement_timeout`, `serialization_failure`, `busy`,
    /// `not_in_transaction`,
    /// `retry_inside_transaction`, `connection_broken`,
    /// `commit_outcome_unknown`, `node_unavailable`, `read_only`, `internal`,
    /// `database`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::NotFound { .. } | Self::NoRow { .. } => "not_found",
            Self::KeyNotUnique { .. } => "key_not_unique",
            Self::GuardFailed { .. } => "guard_failed",
            Self::DuplicateInBatch { .. } => "duplicate_in_batch",
            Self::Deadlock(_) => "deadlock",
            Self::LockNotAvailable(_) => "lock_not_available",
            Self::LockTimeout(_) => "lock_timeout",
            Self::StatementTimeout(_) => "statement_timeout",
            Self::SerializationFailure(_) => "serialization_failure",
            Self::Busy(_) => "busy",
            Self::NotInTransaction { .. } => "not_in_transaction",
            Self::RetryInsideTransaction { .. } => "retry_inside_transaction",
            Self::ConnectionBroken(_) => "connection_broken",
            Self::CommitOutcomeUnknown(_) => "commit_outcome_unknown",
            Self::NodeUnavailable(_) => "node_unavailable",
            Self::ReadOnly(_) => "read_only",
            Self::Internal(_) => "internal",
            Self::Database(_) => "database",
        }
    }

    /// The database error underneath, if this error came from the database.
    pub fn database_error(&self) -> Option<&DieselError> {
        match self {
            Self::Deadlock(e)
            | Self::LockNotAvailable(e)
            | Self::LockTimeout(e)
            | Self::StatementTimeout(e)
            | Self::SerializationFailure(e)
            | Self::Busy(e)
            | Self::ConnectionBroken(e)
            | Self::CommitOutcomeUnknown(e)
            | Self::NodeUnavailable(e)
            | Self::ReadOnly(e)
            | Self::Database(e) => Some(e),
            _ => None,
        }
    }

    /// Re-reads a lock-wait timeout as a failed `NOWAIT`: MariaDB reports both
    /// with error 1205, and only the caller knows which one it asked for. Not
    /// for PostgreSQL, where a lock timeout under `NOWAIT` is a real one.
    #[cfg_attr(
        not(any(feature = "mysql-backend", feature = "mariadb-backend")),
        allow(dead_code)
    )]
    pub(crate) fn nowait_failure(self) -> Self {
        match self {
            Self::LockTimeout(e) => Self::LockNotAvailable(e),
            other => other,
        }
    }
}

/// An error type that [`retry`](crate::retry) can run a transaction with:
/// one that may hold an [`OccError`], and gives it back so the policy can
/// decide whether another attempt can succeed. A service's own error type
/// implements it (and `From<OccError>`) to return its own failures, such as
/// "insufficient stock", from the transaction: those end the retry at once and
/// come back unchanged.
///
/// ```
/// # extern crate occ_runtime as occ;
/// use occ::{AsOccError, OccError};
///
/// #[derive(Debug)]
/// enum AppError {
///     InsufficientStock { wanted: i32, left: i32 },
///     Occ(OccError),
/// }
///
/// impl From<OccError> for AppError {
///     fn from(error: OccError) -> Self {
///         Self::Occ(error)
///     }
/// }
///
/// // `?` on a diesel query inside the transaction.
/// impl From<diesel::result::Error> for AppError {
///     fn from(error: diesel::result::Error) -> Self {
///         Self::Occ(error.into())
///     }
/// }
///
/// impl AsOccError for AppError {
///     fn as_occ_error(&self) -> Option<&OccError> {
///         match self {
///             Self::Occ(error) => Some(error),
///             Self::InsufficientStock { .. } => None,
///         }
///     }
/// }
/// ```
pub trait AsOccError {
    /// The [`OccError`] inside, if there is one; `None` for the caller's own
    /// failures, which are never retried.
    fn as_occ_error(&self) -> Option<&OccError>;
}

impl AsOccError for OccError {
    fn as_occ_error(&self) -> Option<&OccError> {
        Some(self)
    }
}

/// Classifies by diesel's error kind first and by the database's message where
/// the kind is `Unknown`: diesel exposes neither SQLSTATE nor MySQL error numbers.
impl From<DieselError> for OccError {
    fn from(error: DieselError) -> Self {
        if matches!(error, DieselError::NotFound) {
            return Self::NoRow { query: None };
        }
        match Class::of(&error) {
            Class::Deadlock => Self::Deadlock(error),
            Class::LockNotAvailable => Self::LockNotAvailable(error),
            Class::LockTimeout => Self::LockTimeout(error),
            Class::StatementTimeout => Self::StatementTimeout(error),
            Class::SerializationFailure => Self::SerializationFailure(error),
            Class::Busy => Self::Busy(error),
            Class::ConnectionBroken => Self::ConnectionBroken(error),
            Class::NodeUnavailable => Self::NodeUnavailable(error),
            Class::ReadOnly => Self::ReadOnly(error),
            Class::Database => Self::Database(error),
        }
    }
}

/// What a refused ROLLBACK says about its connection: `None` where it only
/// means no transaction was open (SQLite refuses a ROLLBACK outside one), a
/// node that cannot serve now, or a connection that cannot be used again.
pub(crate) fn refused_rollback(error: DieselError) -> Option<OccError> {
    if let DieselError::DatabaseError(_, info) = &error {
        if info.message().contains("no transaction is active") {
            return None;
        }
    }
    Some(match Class::of(&error) {
        Class::NodeUnavailable => OccError::NodeUnavailable(error),
        _ => OccError::ConnectionBroken(error),
    })
}

/// The variant a diesel error belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Deadlock,
    LockNotAvailable,
    LockTimeout,
    StatementTimeout,
    SerializationFailure,
    Busy,
    ConnectionBroken,
    NodeUnavailable,
    ReadOnly,
    Database,
}

impl Class {
    fn of(error: &DieselError) -> Self {
        let (kind, info) = match error {
            DieselError::DatabaseError(kind, info) => (kind, info),
            // A COMMIT that failed, and the ROLLBACK after it too: a
            // connection that went away in either is broken; otherwise the
            // commit's error says what happened.
            DieselError::RollbackErrorOnCommit {
                rollback_error,
                commit_error,
            } => {
                let commit = Self::of(commit_error);
                return if Self::of(rollback_error) == Self::ConnectionBroken {
                    Self::ConnectionBroken
                } else {
                    commit
                };
            }
            _ => return Self::Database,
        };
        let lower = info.message().to_ascii_lowercase();
        match kind {
            DatabaseErrorKind::ClosedConnection => Self::ConnectionBroken,
            // PostgreSQL's 25006, which diesel names.
            DatabaseErrorKind::ReadOnlyTransaction => Self::ReadOnly,
            // MySQL's deadlock (1213) arrives as a serialization failure.
            DatabaseErrorKind::SerializationFailure if lower.contains("deadlock") => Self::Deadlock,
            DatabaseErrorKind::SerializationFailure => Self::SerializationFailure,
            _ if lower.starts_with("deadlock detected") || lower.starts_with("deadlock found") => {
                Self::Deadlock
            }
            // PostgreSQL 55P03 from NOWAIT; MySQL 8's 3572.
            _ if lower.starts_with("could not obtain lock") || lower.contains("nowait is set") => {
                Self::LockNotAvailable
            }
            // PostgreSQL 55P03 from lock_timeout; MySQL/MariaDB 1205.
            _ if lower.contains("due to lock timeout")
                || lower.starts_with("lock wait timeout") =>
            {
                Self::LockTimeout
            }
            // PostgreSQL 57014; MariaDB 1969; MySQL 8's 3024.
            _ if lower.contains("due to statement timeout")
                || lower.contains("max_statement_time exceeded")
                || lower.contains("maximum statement execution time exceeded") =>
            {
                Self::StatementTimeout
            }
            _ if lower.starts_with("could not serialize access") => Self::SerializationFailure,
            // MySQL client 2013 and 2006; libpq when the server ended the
            // session; mysql_async (diesel-async) on a closed connection and
            // on a reply it cannot read.
            _ if lower.starts_with("lost connection to")
                || lower.contains("server has gone away")
                || lower.contains("connection to the server is closed")
                || lower.contains("can't parse: buf doesn't have enough data")
                || lower.starts_with("server closed the connection unexpectedly")
                || lower.starts_with("terminating connection") =>
            {
                Self::ConnectionBroken
            }
            // Galera 1047: the node is not in the primary component; and a
            // write it could not replicate for the same reason.
            _ if lower.starts_with("wsrep has not yet prepared node")
                || lower.contains("not connected to primary component") =>
            {
                Self::NodeUnavailable
            }
            // PostgreSQL 25006 where diesel-async does not name it; MariaDB's
            // and MySQL's 1290 for `--read-only` (and MySQL's
            // `--super-read-only`).
            _ if (lower.starts_with("cannot execute ")
                && lower.ends_with("in a read-only transaction"))
                || lower.contains("running with the --read-only option")
                || lower.contains("running with the --super-read-only option") =>
            {
                Self::ReadOnly
            }
            // SQLite: SQLITE_BUSY and its extended codes, SQLITE_LOCKED.
            _ if lower.starts_with("database is locked")
                || lower.starts_with("database table is locked") =>
            {
                Self::Busy
            }
            _ => Self::Database,
        }
    }
}

/// A MySQL-backend server's answer to SQL of the other dialect (MariaDB's
/// `LOCK IN SHARE MODE` sent to MySQL, or the reverse).
#[cfg_attr(
    not(any(
        feature = "postgres-backend",
        feature = "mysql-backend",
        feature = "mariadb-backend"
    )),
    allow(dead_code)
)]
pub(crate) fn is_syntax_error(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info)
        if info.message().contains("error in your SQL syntax"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What anyhow's `{:#}` and eyre print: each error of the chain once.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut out = error.to_string();
        let mut next = error.source();
        while let Some(e) = next {
            out.push_str(": ");
            out.push_str(&e.to_string());
            next = e.source();
        }
        out
    }

    struct Info(&'static str);
    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn database(kind: DatabaseErrorKind, message: &'static str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(Info(message)))
    }

    #[test]
    fn a_chain_prints_the_database_message_once() {
        let cases = [
            (
                database(DatabaseErrorKind::Unknown, "deadlock detected"),
                "deadlock",
                "deadlock: deadlock detected",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "could not obtain lock on row in relation \"jobs\"",
                ),
                "lock_not_available",
                "lock not available: could not obtain lock on row in relation \"jobs\"",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "canceling statement due to lock timeout",
                ),
                "lock_timeout",
                "lock timeout: canceling statement due to lock timeout",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "canceling statement due to statement timeout",
                ),
                "statement_timeout",
                "statement timeout: canceling statement due to statement timeout",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "Query execution was interrupted (max_statement_time exceeded)",
                ),
                "statement_timeout",
                "statement timeout: Query execution was interrupted (max_statement_time exceeded)",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "Query execution was interrupted, maximum statement execution time exceeded",
                ),
                "statement_timeout",
                "statement timeout: Query execution was interrupted, maximum statement execution \
                 time exceeded",
            ),
            (
                database(
                    DatabaseErrorKind::SerializationFailure,
                    "could not serialize access due to concurrent update",
                ),
                "serialization_failure",
                "serialization failure: could not serialize access due to concurrent update",
            ),
            (
                database(DatabaseErrorKind::Unknown, "database is locked"),
                "busy",
                "database busy: database is locked",
            ),
            (
                database(
                    DatabaseErrorKind::ReadOnlyTransaction,
                    "cannot execute UPDATE in a read-only transaction",
                ),
                "read_only",
                "read-only server (a replica, or a demoted primary): write through the primary: \
                 cannot execute UPDATE in a read-only transaction",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "The MariaDB server is running with the --read-only option so it cannot \
                     execute this statement",
                ),
                "read_only",
                "read-only server (a replica, or a demoted primary): write through the primary: \
                 The MariaDB server is running with the --read-only option so it cannot execute \
                 this statement",
            ),
            (
                database(
                    DatabaseErrorKind::UniqueViolation,
                    "duplicate key value violates unique constraint",
                ),
                "database",
                "duplicate key value violates unique constraint",
            ),
        ];
        for (diesel_error, kind, rendered) in cases {
            let error = OccError::from(diesel_error);
            assert_eq!(error.kind(), kind);
            assert_eq!(chain(&error), rendered);
        }
    }

    #[test]
    fn lost_connections_and_unavailable_nodes_are_told_apart() {
        let cases = [
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "Lost connection to server during query",
                ),
                "connection_broken",
            ),
            (
                database(DatabaseErrorKind::Unknown, "Server has gone away"),
                "connection_broken",
            ),
            (
                database(DatabaseErrorKind::ClosedConnection, "connection closed"),
                "connection_broken",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "terminating connection due to administrator command",
                ),
                "connection_broken",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "WSREP has not yet prepared node for application use",
                ),
                "node_unavailable",
            ),
            (
                database(
                    DatabaseErrorKind::Unknown,
                    "Error while appending streaming replication fragment(provider status: \
                     Not connected to Primary Component)",
                ),
                "node_unavailable",
            ),
            (
                DieselError::RollbackErrorOnCommit {
                    rollback_error: Box::new(database(
                        DatabaseErrorKind::Unknown,
                        "Server has gone away",
                    )),
                    commit_error: Box::new(database(
                        DatabaseErrorKind::Unknown,
                        "Lost connection to server during query",
                    )),
                },
                "connection_broken",
            ),
            (
                DieselError::RollbackErrorOnCommit {
                    rollback_error: Box::new(database(
                        DatabaseErrorKind::Unknown,
                        "no transaction in progress",
                    )),
                    commit_error: Box::new(database(
                        DatabaseErrorKind::SerializationFailure,
                        "Deadlock found when trying to get lock; try restarting transaction",
                    )),
                },
                "deadlock",
            ),
        ];
        for (diesel_error, kind) in cases {
            let error = OccError::from(diesel_error);
            assert_eq!(error.kind(), kind, "{error:?}");
            assert_eq!(error.is_retryable(), kind == "deadlock", "{error:?}");
        }
    }

    #[test]
    fn no_row_and_not_found_are_one_answer() {
        let missing = OccError::NotFound {
            table: "products",
            key: "id = 7".into(),
        };
        let no_row = OccError::NoRow {
            query: Some("SELECT 1 FOR UPDATE".into()),
        };
        assert!(missing.is_not_found() && no_row.is_not_found());
        assert_eq!((missing.kind(), no_row.kind()), ("not_found", "not_found"));
        // diesel's own "no row", as `?` converts it.
        let diesel = OccError::from(DieselError::NotFound);
        assert!(
            diesel.is_not_found() && !diesel.is_retryable(),
            "{diesel:?}"
        );
        assert_eq!(diesel.kind(), "not_found");
        assert!(matches!(diesel, OccError::NoRow { query: None }));
    }
}
