//! Statements on a sync diesel connection: each runs when its method is
//! called, and the future returned is ready.

use alloc::borrow::Cow;
use core::future::{ready, Future, Ready};
use core::time::Duration;

use diesel::connection::{
    Connection, LoadConnection, TransactionManager, TransactionManagerStatus,
};
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};
use diesel::{OptionalExtension, QueryResult, RunQueryDsl};

use super::{Exec, Execute, Load, TextQuery, TextRow};
use crate::flight::{Boarded, Flight};
use std::sync::Arc;

/// The kind of a sync diesel connection.
#[derive(Debug)]
pub enum Blocking {}

/// What a sync connection must put right after a failed transaction; nothing
/// for most.
pub trait AfterFailure {
    /// See [`Exec::after_failed_transaction`].
    fn after_failed_transaction(&mut self) {}
}

impl<C> Exec<Blocking> for C
where
    C: Connection + LoadConnection + AfterFailure,
    TextQuery: LoadQuery<'static, C, TextRow>,
{
    type Db = C::Backend;

    const TRANSACTION_HINT: &'static str = "conn.transaction(..) or occ::retry(..)";

    fn status(&mut self) -> &mut TransactionManagerStatus {
        C::TransactionManager::transaction_manager_status_mut(self)
    }

    fn batch(&mut self, sql: Cow<'static, str>) -> impl Future<Output = QueryResult<()>> + Send {
        ready(self.batch_execute(&sql))
    }

    fn text(
        &mut self,
        query: TextQuery,
    ) -> impl Future<Output = QueryResult<Option<String>>> + Send {
        let row = RunQueryDsl::get_result::<TextRow>(query, self).optional();
        ready(row.map(|row| row.map(|row| row.occ_text)))
    }

    fn begin(&mut self) -> impl Future<Output = QueryResult<()>> + Send {
        ready(C::TransactionManager::begin_transaction(self))
    }

    fn commit(&mut self) -> impl Future<Output = QueryResult<()>> + Send {
        ready(C::TransactionManager::commit_transaction(self))
    }

    fn rollback(&mut self) -> impl Future<Output = QueryResult<()>> + Send {
        ready(C::TransactionManager::rollback_transaction(self))
    }

    fn after_failed_transaction(&mut self) {
        AfterFailure::after_failed_transaction(self);
    }

    fn board(flight: &Arc<Flight>) -> impl Future<Output = (Boarded, bool)> + Send {
        ready(Flight::board_blocking(flight))
    }

    fn pause(pause: Duration) -> impl Future<Output = ()> + Send {
        std::thread::sleep(pause);
        ready(())
    }
}

impl<C, Q> Execute<C, Blocking> for Q
where
    C: Connection,
    Q: ExecuteDsl<C>,
{
    fn send(self, conn: &mut C) -> impl Future<Output = QueryResult<usize>> {
        ready(ExecuteDsl::execute(self, conn))
    }
}

// Any lifetime: a statement that carries a model's borrowed values (a
// versioned update returning its version) loads as well as an owned one.
impl<'q, C, Q, U> Load<C, Blocking, U> for Q
where
    C: Connection,
    Q: RunQueryDsl<C> + LoadQuery<'q, C, U>,
{
    // Named futures, not `impl Future`: an opaque type would capture `'q`,
    // which nothing else constrains.
    #[allow(refining_impl_trait)]
    fn load_all(self, conn: &mut C) -> Ready<QueryResult<Vec<U>>> {
        ready(self.load(conn))
    }

    #[allow(refining_impl_trait)]
    fn load_first(self, conn: &mut C) -> Ready<QueryResult<Option<U>>> {
        ready(self.get_result(conn).optional())
    }
}
