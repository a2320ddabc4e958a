//! How a statement reaches the database: the one seam between sync diesel
//! connections and diesel-async ones.
//!
//! Everything occ does around a statement (a versioned write and its
//! outcome, a lock with its timeout, a transaction and its repair, retry) is
//! written once, as `async` code generic over a connection `C: Exec<K>`. The
//! kind `K` says how statements are sent: [`Blocking`] for a diesel
//! `Connection`, whose futures are ready when first polled and are driven by
//! [`block_on`]; `NonBlocking` for a diesel-async `AsyncConnection`, whose
//! futures the caller awaits. The kind is a type parameter, not a wrapper, so
//! the same connection type can be both without the two implementations
//! overlapping, and the runtime code takes `&mut C` as users hold it.

use alloc::borrow::Cow;
use core::future::Future;
use core::num::NonZeroU32;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use diesel::backend::Backend;
use diesel::connection::TransactionManagerStatus;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Text, Untyped};
use diesel::QueryResult;

use crate::error::OccError;
use crate::flight::{Boarded, Flight};
use std::sync::Arc;

mod blocking;
#[cfg(feature = "async")]
mod nonblocking;

#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "mariadb"
    )),
    allow(unused_imports)
)]
pub use self::blocking::{AfterFailure, Blocking};
#[cfg(feature = "async")]
pub use self::nonblocking::{AsyncLoad, NonBlocking};

/// What occ sends on a connection of kind `K`, besides the statements of
/// [`Execute`] and [`Load`]. Public in a private module: the public
/// connection traits name it, users cannot.
///
/// Its futures are `Send` for every kind, so that code generic over the
/// backend (the lock steps) is `Send` on an async connection. A blocking
/// connection runs the statement when the method is called and returns a
/// ready future.
pub trait Exec<K>: Sized {
    /// The diesel backend the connection speaks (named apart from the
    /// connection traits' own `Backend`).
    type Db: Backend;

    /// Where a row lock asked for outside a transaction should run, for
    /// [`OccError::NotInTransaction`]: the transaction and the retry helper
    /// of this kind of connection.
    const TRANSACTION_HINT: &'static str;

    /// The state of diesel's transaction manager on this connection.
    fn status(&mut self) -> &mut TransactionManagerStatus;

    /// Runs `sql` (one or more statements without results). Owned or
    /// static, so that the future borrows nothing but the connection.
    fn batch(&mut self, sql: Cow<'static, str>) -> impl Future<Output = QueryResult<()>> + Send;

    /// Runs `query` and returns the column `occ_text` of its first row.
    fn text(
        &mut self,
        query: TextQuery,
    ) -> impl Future<Output = QueryResult<Option<String>>> + Send;

    /// Opens a transaction (a savepoint inside one), as diesel counts them.
    fn begin(&mut self) -> impl Future<Output = QueryResult<()>> + Send;

    /// Commits what [`begin`](Self::begin) opened.
    fn commit(&mut self) -> impl Future<Output = QueryResult<()>> + Send;

    /// Rolls back what [`begin`](Self::begin) opened.
    fn rollback(&mut self) -> impl Future<Output = QueryResult<()>> + Send;

    /// Puts right what a failed transaction may have left behind on the
    /// client side, before the connection is used again.
    fn after_failed_transaction(&mut self) {}

    /// Waits `pause` between two attempts of a transaction.
    fn pause(pause: Duration) -> impl Future<Output = ()> + Send;

    /// Waits to be this process's one writer of a hot row, as this kind of
    /// connection waits; whether another writer was there first.
    fn board(flight: &Arc<Flight>) -> impl Future<Output = (Boarded, bool)> + Send;
}

/// A statement with a row count, sent on connection `C` of kind `K`.
pub trait Execute<C, K> {
    /// Runs the statement; the number of rows it touched.
    fn send(self, conn: &mut C) -> impl Future<Output = QueryResult<usize>>;
}

/// A query loading rows `U`, sent on connection `C` of kind `K`.
pub trait Load<C, K, U> {
    /// Every row.
    fn load_all(self, conn: &mut C) -> impl Future<Output = QueryResult<Vec<U>>>;
    /// The first row, if any.
    fn load_first(self, conn: &mut C) -> impl Future<Output = QueryResult<Option<U>>>;
}

/// A query of occ's own that reads one text column named `occ_text`: a
/// server's version or setting. SQL, then at most one text parameter, then
/// more SQL.
#[derive(Debug, Clone)]
pub struct TextQuery {
    before: Cow<'static, str>,
    bind: Option<String>,
    after: &'static str,
}

impl TextQuery {
    /// `sql` without parameters.
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Self {
            before: sql.into(),
            bind: None,
            after: "",
        }
    }

    /// `before`, the parameter `value`, then `after`.
    #[cfg_attr(not(feature = "postgres-backend"), allow(dead_code))]
    pub(crate) fn bound(before: &'static str, value: String, after: &'static str) -> Self {
        Self {
            before: before.into(),
            bind: Some(value),
            after,
        }
    }
}

impl Query for TextQuery {
    type SqlType = Untyped;
}

impl QueryId for TextQuery {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for TextQuery
where
    DB: Backend + HasSqlType<Text>,
    String: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(&self.before);
        if let Some(value) = &self.bind {
            out.push_bind_param::<Text, String>(value)?;
        }
        out.push_sql(self.after);
        Ok(())
    }
}

impl<C> diesel::RunQueryDsl<C> for TextQuery {}

/// The row of a [`TextQuery`].
#[derive(diesel::QueryableByName)]
pub struct TextRow {
    #[diesel(sql_type = Text)]
    occ_text: String,
}

/// How many transactions (the outermost and its savepoints) are open on
/// `conn`, as diesel's transaction manager counts them. A raw `BEGIN` sent
/// as SQL is not counted.
pub(crate) fn depth<K, C: Exec<K>>(conn: &mut C) -> Result<u32, OccError> {
    let depth = conn.status().transaction_depth()?;
    Ok(depth.map_or(0, NonZeroU32::get))
}

/// Drives a future of the [`Blocking`] kind: every step it awaits has
/// already happened when polled, so it is ready at its first poll.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("a blocking connection's future is ready at its first poll"),
    }
}
