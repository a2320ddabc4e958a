//! Statements on a diesel-async connection, awaited by the caller.

use alloc::borrow::Cow;
use core::future::Future;
use core::pin::pin;
use core::time::Duration;

use diesel::connection::TransactionManagerStatus;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel::query_dsl::CompatibleType;
use diesel::QueryResult;
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{
    AsyncConnection, AsyncConnectionCore, SimpleAsyncConnection, TransactionManager,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{Exec, Execute, Load, TextQuery, TextRow};
use crate::flight::{Boarded, Flight};
use std::sync::Arc;

/// The kind of a diesel-async connection.
#[derive(Debug)]
pub enum NonBlocking {}

impl<C> Exec<NonBlocking> for C
where
    C: AsyncConnection,
    TextQuery: LoadQuery<'static, C, TextRow>,
{
    type Db = <C as AsyncConnectionCore>::Backend;

    const TRANSACTION_HINT: &'static str = "conn.transaction(..) or occ::retry_async(..)";

    fn status(&mut self) -> &mut TransactionManagerStatus {
        C::TransactionManager::transaction_manager_status_mut(self)
    }

    async fn batch(&mut self, sql: Cow<'static, str>) -> QueryResult<()> {
        SimpleAsyncConnection::batch_execute(self, &sql).await
    }

    async fn text(&mut self, query: TextQuery) -> QueryResult<Option<String>> {
        let row: Option<TextRow> = first(query, self).await?;
        Ok(row.map(|row| row.occ_text))
    }

    async fn begin(&mut self) -> QueryResult<()> {
        C::TransactionManager::begin_transaction(self).await
    }

    async fn commit(&mut self) -> QueryResult<()> {
        C::TransactionManager::commit_transaction(self).await
    }

    async fn rollback(&mut self) -> QueryResult<()> {
        C::TransactionManager::rollback_transaction(self).await
    }

    async fn pause(pause: Duration) {
        tokio::time::sleep(pause).await;
    }

    async fn board(flight: &Arc<Flight>) -> (Boarded, bool) {
        Flight::board_async(flight).await
    }
}

impl<C, Q> Execute<C, NonBlocking> for Q
where
    C: AsyncConnection,
    Q: ExecuteDsl<C>,
{
    async fn send(self, conn: &mut C) -> QueryResult<usize> {
        ExecuteDsl::execute(self, conn).await
    }
}

/// A query loading rows `U` on diesel-async connection `C`: the bounds of
/// diesel-async's own `LoadQuery`, without its lifetime. A query that
/// borrows (a changeset of `&input`) loads, and the futures are `Send` for
/// every lifetime rustc erases inside code generic over the connection,
/// which a bound `LoadQuery<'q, ..>` for one `'q` cannot show
/// (rust-lang/rust#100013). The connection traits' where-clauses name it,
/// so that the futures of [`Load`] are known to be `Send` there.
pub trait AsyncLoad<C, U>: Sized {
    /// Every row.
    fn rows(self, conn: &mut C) -> impl Future<Output = QueryResult<Vec<U>>> + Send;
    /// The first row, if any.
    fn first_row(self, conn: &mut C) -> impl Future<Output = QueryResult<Option<U>>> + Send;
}

impl<C, Q, U, ST> AsyncLoad<C, U> for Q
where
    C: AsyncConnectionCore,
    C::Backend: QueryMetadata<Q::SqlType> + 'static,
    Q: AsQuery + Send,
    Q::Query: QueryFragment<C::Backend> + QueryId + Send,
    Q::SqlType: CompatibleType<U, C::Backend, SqlType = ST>,
    U: FromSqlRow<ST, C::Backend> + Send + 'static,
    ST: 'static,
{
    async fn rows(self, conn: &mut C) -> QueryResult<Vec<U>> {
        conn.load(self)
            .await?
            .map(row::<C, U, ST>)
            .try_collect()
            .await
    }

    async fn first_row(self, conn: &mut C) -> QueryResult<Option<U>> {
        let mut rows = pin!(conn.load(self).await?);
        rows.next().await.map(row::<C, U, ST>).transpose()
    }
}

impl<C, Q, U> Load<C, NonBlocking, U> for Q
where
    C: AsyncConnection,
    Q: AsyncLoad<C, U>,
{
    fn load_all(self, conn: &mut C) -> impl Future<Output = QueryResult<Vec<U>>> {
        self.rows(conn)
    }

    fn load_first(self, conn: &mut C) -> impl Future<Output = QueryResult<Option<U>>> {
        self.first_row(conn)
    }
}

/// A row of a query's result as `U`, as diesel-async's `LoadQuery` builds it.
fn row<'c, 'q, C, U, ST>(row: QueryResult<C::Row<'c, 'q>>) -> QueryResult<U>
where
    C: AsyncConnectionCore,
    U: FromSqlRow<ST, C::Backend>,
{
    U::build_from_row(&row?).map_err(diesel::result::Error::DeserializationError)
}

// Through diesel-async's `methods` traits rather than its `RunQueryDsl`:
// from 0.10 on, `RunQueryDsl` covers only the query types diesel marks
// (`RunQueryDslSupport`, new in diesel 2.4), and occ's own statements work
// with every release from 0.9 on.

/// The first row of `query`, if any (what diesel-async's `get_result` and
/// `optional` give).
async fn first<C, Q, U>(query: Q, conn: &mut C) -> QueryResult<Option<U>>
where
    C: AsyncConnectionCore,
    Q: LoadQuery<'static, C, U>,
{
    let mut rows = pin!(query.internal_load(conn).await?);
    rows.next().await.transpose()
}
