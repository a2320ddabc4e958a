//! diesel-async connections: `AsyncPgConnection`, `AsyncMysqlConnection`,
//! `AsyncMariadbConnection`, `SyncConnectionWrapper<SqliteConnection>`, and
//! the pooled connections of diesel-async's deadpool and bb8 pools, passed
//! as `&mut pooled`.

use diesel_async::AsyncConnection;

use super::sealed::nonblocking::Sealed;

/// A diesel-async connection occ runs transactions on: `AsyncPgConnection`,
/// `AsyncMysqlConnection`, `AsyncMariadbConnection`,
/// `SyncConnectionWrapper<SqliteConnection>` and the pooled connections of
/// diesel-async's pools, as the enabled features allow.
pub trait AsyncOccConnection: AsyncConnection + Sealed {}

// Hidden: its bounds are occ's own; the trait's docs say what implements it.
#[doc(hidden)]
impl<C> AsyncOccConnection for C where C: AsyncConnection + Sealed {}

/// The pooled connections of diesel-async's deadpool pools.
#[cfg(feature = "deadpool")]
mod deadpool_pool {
    use deadpool::managed::{Manager, Object};

    use crate::backend::sealed::Kind;

    impl<M> Kind for Object<M>
    where
        M: Manager,
        M::Type: Kind,
    {
        type Kind = <M::Type as Kind>::Kind;
    }
}

/// The pooled connections of diesel-async's bb8 pools.
#[cfg(feature = "bb8")]
mod bb8_pool {
    use bb8::{ManageConnection, PooledConnection};

    use crate::backend::sealed::Kind;

    impl<M> Kind for PooledConnection<'_, M>
    where
        M: ManageConnection,
        M::Connection: Kind,
    {
        type Kind = <M::Connection as Kind>::Kind;
    }
}
