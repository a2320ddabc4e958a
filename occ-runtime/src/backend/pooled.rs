//! r2d2's pooled connections, passed as `&mut pooled`: what the connection
//! inside does.

use core::time::Duration;

use diesel::r2d2::{ManageConnection, PooledConnection, R2D2Connection};

use super::sealed::{Locks, Transactions};
use super::{Dialect, IsolationAt, OccConnection, RowLocking};
use crate::error::OccError;

impl<M> OccConnection for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: OccConnection + R2D2Connection + Send + 'static,
{
}

impl<M> Transactions for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: Transactions,
{
    const ISOLATION: IsolationAt = <M::Connection as Transactions>::ISOLATION;

    fn after_failed_transaction(&mut self) {
        (**self).after_failed_transaction();
    }
}

impl<M> RowLocking for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: RowLocking + R2D2Connection + Send + 'static,
{
}

impl<M> Locks for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: Locks,
{
    fn dialect(&mut self, refresh: bool) -> Result<Dialect, OccError> {
        (**self).dialect(refresh)
    }

    fn set_lock_timeout(&mut self, timeout: Duration) -> Result<String, OccError> {
        (**self).set_lock_timeout(timeout)
    }

    fn restore_lock_timeout(&mut self, saved: String, aborted: bool) -> Result<(), OccError> {
        (**self).restore_lock_timeout(saved, aborted)
    }
}
