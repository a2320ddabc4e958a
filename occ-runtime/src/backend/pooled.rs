//! r2d2's pooled connections, passed as `&mut pooled`: what the connection
//! inside does.

use diesel::r2d2::{ManageConnection, PooledConnection, R2D2Connection};

use super::sealed::{Hooks, Kind};
use super::OccConnection;
use crate::exec::{AfterFailure, Blocking, Exec};

impl<M> OccConnection for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: OccConnection + R2D2Connection + Send + 'static,
    Self: Exec<Blocking, Db: Hooks>,
{
}

impl<M> Kind for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: Kind,
{
    type Kind = <M::Connection as Kind>::Kind;
}

impl<M> AfterFailure for PooledConnection<M>
where
    M: ManageConnection,
    M::Connection: AfterFailure,
{
    fn after_failed_transaction(&mut self) {
        (**self).after_failed_transaction();
    }
}
