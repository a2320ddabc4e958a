//! Statements on a diesel-async connection, awaited by the caller.

use alloc::borrow::Cow;
use core::pin::pin;
use core::time::Duration;

use diesel::connection::TransactionManagerStatus;
use diesel::QueryResult;
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{
    AsyncConnection, AsyncConnectionCore, SimpleAsyncConnection, TransactionManager,
};
use futures_util::{StreamExt, TryStreamExt};

use super::{Exec, Execute, Load, TextQuery, TextRow};

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

impl<C, Q, U> Load<C, NonBlocking, U> for Q
where
    C: AsyncConnection,
    U: Send + 'static,
    Q: LoadQuery<'static, C, U> + 'static,
{
    async fn load_all(self, conn: &mut C) -> QueryResult<Vec<U>> {
        self.internal_load(conn).await?.try_collect().await
    }

    async fn load_first(self, conn: &mut C) -> QueryResult<Option<U>> {
        first(self, conn).await
    }
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
