//! What a connection can do for a model: the bounds of generic code.
//!
//! [`Store`] and [`Reload`] on sync connections, [`AsyncStore`] and
//! [`AsyncReload`] on diesel-async ones, each implemented for every
//! connection occ runs on and every `#[derive(Optimistic)]` model whose
//! statements that connection's backend can run. They hold what the
//! methods of [`OptimisticDsl`](crate::OptimisticDsl) and
//! [`AsyncOptimisticDsl`](crate::AsyncOptimisticDsl) need, as diesel's
//! `UpdateAndFetchResults` does for `save_changes`, so that a repository
//! generic over the model and the connection names only these (see
//! [`Store`]). Their methods are occ's own and hidden; call the model's.

use diesel::query_builder::{QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::Selectable;

use crate::backend::OccConnection;
use crate::batch::{self, BatchDelete, BatchProbe, BatchReport, BatchUpdate, Partial};
use crate::error::{AsOccError, OccError};
use crate::exec::{block_on, Blocking};
use crate::model::Optimistic;
use crate::modify::{self, ModifyPolicy};
use crate::query::{
    delete_statement, CurrentRow, DeleteStatement, FindStatement, ForModify, GuardProbe,
    GuardedUpdate, UpdateOrCurrent, UpdateReturning, UpdateStatement, VersionProbe,
};
use crate::write;

#[cfg(feature = "async")]
pub use self::nonblocking::{AsyncGuardedStore, AsyncReload, AsyncStore};

fn partial(all_or_nothing: bool) -> Partial {
    if all_or_nothing {
        Partial::RollBack
    } else {
        Partial::Commit
    }
}

/// A sync connection that writes and deletes rows of model `M` versioned,
/// one at a time and in batches: every [`OccConnection`], for every
/// `#[derive(Optimistic)]` model. `Changes` is what an update assigns:
/// the model's own fields by default, any diesel changeset for
/// [`update_if_version`](crate::OptimisticDsl::update_if_version).
///
/// The bound of generic code that writes models; with [`Reload`] it also
/// reads them back:
///
/// ```
/// # extern crate occ_runtime as occ;
/// use occ::{OccError, OptimisticDsl, Reload, Store};
///
/// /// Writes `model`, or, if someone else wrote its row first, reads the
/// /// row as it is now and says so.
/// fn save<M, C>(model: &mut M, conn: &mut C) -> Result<bool, OccError>
/// where
///     M: OptimisticDsl,
///     C: Reload<M>,
/// {
///     match model.update_versioned(conn) {
///         Ok(()) => Ok(true),
///         Err(e) if e.is_conflict() => {
///             model.reload(conn)?;
///             Ok(false)
///         }
///         Err(e) => Err(e),
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "occ cannot write `{M}` on `{Self}`",
    label = "needs a connection occ runs on, for a model of that connection's backend",
    note = "occ writes on `SqliteConnection`, `PgConnection`, `MysqlConnection` and `MariadbConnection` (features `sqlite`, `postgres`, `mysql`, `mariadb`) and their r2d2 pooled connections (feature `r2d2`), e.g. `occ = {{ version = \"0.1\", features = [\"postgres\", \"r2d2\"] }}`; an async connection takes `occ::async_prelude` and `AsyncStore`"
)]
pub trait Store<M: Optimistic, Changes = <M as Optimistic>::Changeset>: OccConnection {
    #[doc(hidden)]
    fn occ_update(
        &mut self,
        key: M::Key,
        expected: &M::Version,
        changes: Changes,
        next: M::Version,
    ) -> Result<M::Version, OccError>;

    #[doc(hidden)]
    fn occ_delete(&mut self, key: M::Key, expected: &M::Version) -> Result<(), OccError>;

    #[doc(hidden)]
    fn occ_update_all(
        &mut self,
        models: &mut [M],
        all_or_nothing: bool,
    ) -> Result<BatchReport<M>, OccError>;

    #[doc(hidden)]
    fn occ_delete_all(
        &mut self,
        models: &[M],
        all_or_nothing: bool,
    ) -> Result<BatchReport<M>, OccError>;
}

// Hidden: its where-clauses are occ's statement types, which a reader
// cannot look up; the trait's docs say what implements it.
#[doc(hidden)]
impl<'q, M, C, S> Store<M, S> for C
where
    M: Optimistic,
    C: OccConnection,
    UpdateStatement<M, S>: QueryFragment<C::Backend> + QueryId,
    UpdateReturning<M, S>: LoadQuery<'q, C, M::Version>,
    UpdateStatement<M, M::Changeset>: QueryFragment<C::Backend> + QueryId,
    UpdateReturning<M, M::Changeset>: LoadQuery<'q, C, M::Version>,
    DeleteStatement<M>: QueryFragment<C::Backend> + QueryId,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
    // `'q`, not `'static`: the batch statements hold the models' values,
    // which a model may borrow.
    BatchUpdate<M>: LoadQuery<'q, C, i32>,
    BatchDelete<M>: LoadQuery<'q, C, i32>,
    BatchProbe<M>: LoadQuery<'q, C, (i32, Option<M::Version>)>,
{
    fn occ_update(
        &mut self,
        key: M::Key,
        expected: &M::Version,
        changes: S,
        next: M::Version,
    ) -> Result<M::Version, OccError> {
        block_on(write::update::<M, Blocking, C, _>(
            self, key, expected, changes, next,
        ))
    }

    fn occ_delete(&mut self, key: M::Key, expected: &M::Version) -> Result<(), OccError> {
        let statement = delete_statement::<M>(key.clone(), expected.clone());
        block_on(write::execute::<M, Blocking, C, _>(
            self, "DELETE", statement, key, expected,
        ))
    }

    fn occ_update_all(
        &mut self,
        models: &mut [M],
        all_or_nothing: bool,
    ) -> Result<BatchReport<M>, OccError> {
        let outcomes = block_on(batch::update_all::<M, Blocking, C>(
            self,
            models,
            partial(all_or_nothing),
        ))?;
        Ok(batch::settle_update(models, outcomes))
    }

    fn occ_delete_all(
        &mut self,
        models: &[M],
        all_or_nothing: bool,
    ) -> Result<BatchReport<M>, OccError> {
        let outcomes = block_on(batch::delete_all::<M, Blocking, C>(
            self,
            models,
            partial(all_or_nothing),
        ))?;
        Ok(batch::settle_delete(models, outcomes))
    }
}

/// A sync connection that runs guarded updates of model `M`: guard `Guard`
/// (a diesel boolean expression on the model's table) and changeset
/// `Changes`. Every [`OccConnection`], for every `#[derive(Optimistic)]`
/// model; the bound of [`update_where`](crate::OptimisticDsl::update_where).
#[diagnostic::on_unimplemented(
    message = "occ cannot run a guarded update of `{M}` on `{Self}`",
    label = "needs a connection occ runs on, and a guard and changes of the model's table",
    note = "the guard is a boolean expression on the model's table (`products::qty.ge(n)`), the changes a diesel changeset of it (`products::qty.eq(products::qty - n)`); both are sent twice when the update matches nothing, so they must be `Clone`"
)]
pub trait GuardedStore<M: Optimistic, Guard, Changes>: OccConnection {
    #[doc(hidden)]
    fn occ_update_where(
        &mut self,
        key: M::Key,
        guard: Guard,
        changes: Changes,
    ) -> Result<(), OccError>;
}

// Hidden: its where-clauses are occ's statement types.
#[doc(hidden)]
impl<M, C, G, S> GuardedStore<M, G, S> for C
where
    M: Optimistic,
    C: OccConnection,
    G: Clone,
    S: Clone,
    GuardedUpdate<M, G, S>: QueryFragment<C::Backend> + QueryId,
    GuardProbe<M, G>: LoadQuery<'static, C, i32>,
{
    fn occ_update_where(&mut self, key: M::Key, guard: G, changes: S) -> Result<(), OccError> {
        block_on(write::update_where::<M, Blocking, C, G, S>(
            self, key, guard, changes,
        ))
    }
}

/// A sync connection that also reads rows of model `M` back: every
/// [`Store`] of a model that derives diesel's `Selectable`. The bound of
/// [`reload`](crate::OptimisticDsl::reload) and
/// [`update_versioned_or_current`](crate::OptimisticDsl::update_versioned_or_current).
#[diagnostic::on_unimplemented(
    message = "occ cannot read `{M}` back on `{Self}`",
    label = "needs a connection occ runs on, and a model that derives diesel's `Selectable`",
    note = "`reload` and `update_versioned_or_current` load the model with `Model::as_select()`: add `Selectable` (and `Queryable`) to its derives"
)]
pub trait Reload<M: Optimistic>: Store<M> {
    #[doc(hidden)]
    fn occ_reload(&mut self, key: M::Key) -> Result<M, OccError>;

    #[doc(hidden)]
    fn occ_update_or_current(
        &mut self,
        key: M::Key,
        expected: &M::Version,
        changes: M::Changeset,
        next: M::Version,
    ) -> Result<Result<M::Version, M>, OccError>;

    #[doc(hidden)]
    fn occ_modify<E, F>(
        &mut self,
        key: M::Key,
        first: Option<M>,
        policy: &ModifyPolicy,
        body: F,
    ) -> Result<M, E>
    where
        E: From<OccError> + AsOccError,
        F: FnMut(&mut M) -> Result<(), E>;
}

// Hidden: its where-clauses are occ's statement types, which a reader
// cannot look up; the trait's docs say what implements it.
#[doc(hidden)]
impl<'q, M, C> Reload<M> for C
where
    M: Optimistic + Selectable<C::Backend>,
    C: Store<M>,
    FindStatement<M, C::Backend>: LoadQuery<'static, C, M>,
    UpdateOrCurrent<M, M::Changeset, C::Backend>: LoadQuery<'static, C, (M, bool)>,
    CurrentRow<M, C::Backend>: LoadQuery<'static, C, M>,
    FindStatement<M, C::Backend, ForModify>: LoadQuery<'static, C, M>,
    UpdateStatement<M, M::Changeset>: QueryFragment<C::Backend> + QueryId,
    UpdateReturning<M, M::Changeset>: LoadQuery<'q, C, M::Version>,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
{
    fn occ_modify<E, F>(
        &mut self,
        key: M::Key,
        first: Option<M>,
        policy: &ModifyPolicy,
        body: F,
    ) -> Result<M, E>
    where
        E: From<OccError> + AsOccError,
        F: FnMut(&mut M) -> Result<(), E>,
    {
        block_on(modify::modify::<M, Blocking, C, C::Backend, E, F>(
            self, key, first, policy, body,
        ))
    }

    fn occ_reload(&mut self, key: M::Key) -> Result<M, OccError> {
        block_on(write::reload::<M, Blocking, C, C::Backend>(self, key))
    }

    fn occ_update_or_current(
        &mut self,
        key: M::Key,
        expected: &M::Version,
        changes: M::Changeset,
        next: M::Version,
    ) -> Result<Result<M::Version, M>, OccError> {
        block_on(write::update_or_current::<M, Blocking, C, C::Backend, _>(
            self, key, expected, changes, next,
        ))
    }
}

#[cfg(feature = "async")]
mod nonblocking {
    use core::future::Future;

    use diesel::Selectable;
    use diesel_async::methods::ExecuteDsl;

    use super::partial;
    use crate::backend::AsyncOccConnection;
    use crate::batch::{self, BatchDelete, BatchProbe, BatchReport, BatchUpdate};
    use crate::error::{AsOccError, OccError};
    use crate::exec::{AsyncLoad, NonBlocking};
    use crate::model::Optimistic;
    use crate::modify::{self, ModifyPolicy};
    use crate::query::{
        delete_statement, CurrentRow, DeleteStatement, FindStatement, ForModify, GuardProbe,
        GuardedUpdate, UpdateOrCurrent, UpdateReturning, UpdateStatement, VersionProbe,
    };
    use crate::transaction::step;
    use crate::write;

    /// What every async method's model must be: `Send` and `Sync` with the
    /// pieces of its statements, so that the futures are `Send`. Every
    /// model with owned fields is.
    pub trait SendModel:
        Optimistic<
            Key: Send + Sync,
            Table: Send + Sync,
            KeyPredicate: Send + Sync,
            VersionPredicate: Send + Sync,
            VersionColumn: Send + Sync,
            Changeset: Send,
            KeyValues: Send,
            WritableValues: Send,
        > + Send
        + Sync
        + 'static
    {
    }

    impl<M> SendModel for M where
        M: Optimistic<
                Key: Send + Sync,
                Table: Send + Sync,
                KeyPredicate: Send + Sync,
                VersionPredicate: Send + Sync,
                VersionColumn: Send + Sync,
                Changeset: Send,
                KeyValues: Send,
                WritableValues: Send,
            > + Send
            + Sync
            + 'static
    {
    }

    /// A diesel-async connection that writes and deletes rows of model `M`
    /// versioned, one at a time and in batches: every
    /// [`AsyncOccConnection`], for every `#[derive(Optimistic)]` model with
    /// owned fields. The async [`Store`](super::Store); its futures are
    /// `Send`.
    #[diagnostic::on_unimplemented(
        message = "occ cannot write `{M}` on `{Self}`",
        label = "needs a diesel-async connection occ runs on, for a model with owned fields of that connection's backend",
        note = "occ writes on `AsyncPgConnection`, `AsyncMysqlConnection`, `AsyncMariadbConnection` and `SyncConnectionWrapper<SqliteConnection>` (features `async-postgres`, `async-mysql`, `async-mariadb`, `async-sqlite`) and the pooled connections of deadpool and bb8 (features `deadpool`, `bb8`), as `&mut pooled`"
    )]
    pub trait AsyncStore<M: Optimistic, Changes = <M as Optimistic>::Changeset>:
        AsyncOccConnection
    {
        #[doc(hidden)]
        fn occ_update(
            &mut self,
            key: M::Key,
            expected: &M::Version,
            changes: Changes,
            next: M::Version,
        ) -> impl Future<Output = Result<M::Version, OccError>> + Send;

        #[doc(hidden)]
        fn occ_delete(
            &mut self,
            key: M::Key,
            expected: &M::Version,
        ) -> impl Future<Output = Result<(), OccError>> + Send;

        #[doc(hidden)]
        fn occ_update_all(
            &mut self,
            models: &mut [M],
            all_or_nothing: bool,
        ) -> impl Future<Output = Result<BatchReport<M>, OccError>> + Send;

        #[doc(hidden)]
        fn occ_delete_all(
            &mut self,
            models: &[M],
            all_or_nothing: bool,
        ) -> impl Future<Output = Result<BatchReport<M>, OccError>> + Send;
    }

    // Hidden: its where-clauses are occ's statement types, which a reader
    // cannot look up; the trait's docs say what implements it.
    #[doc(hidden)]
    impl<M, C, S> AsyncStore<M, S> for C
    where
        M: SendModel,
        C: AsyncOccConnection,
        S: Send,
        UpdateStatement<M, S>: ExecuteDsl<C>,
        UpdateReturning<M, S>: AsyncLoad<C, M::Version>,
        UpdateStatement<M, M::Changeset>: ExecuteDsl<C>,
        UpdateReturning<M, M::Changeset>: AsyncLoad<C, M::Version>,
        DeleteStatement<M>: ExecuteDsl<C>,
        VersionProbe<M>: AsyncLoad<C, M::Version>,
        BatchUpdate<M>: AsyncLoad<C, i32>,
        BatchDelete<M>: AsyncLoad<C, i32>,
        BatchProbe<M>: AsyncLoad<C, (i32, Option<M::Version>)>,
    {
        fn occ_update(
            &mut self,
            key: M::Key,
            expected: &M::Version,
            changes: S,
            next: M::Version,
        ) -> impl Future<Output = Result<M::Version, OccError>> + Send {
            step::<NonBlocking, C, _>(self, async |conn| {
                write::update::<M, NonBlocking, C, _>(conn, key, expected, changes, next).await
            })
        }

        fn occ_delete(
            &mut self,
            key: M::Key,
            expected: &M::Version,
        ) -> impl Future<Output = Result<(), OccError>> + Send {
            let statement = delete_statement::<M>(key.clone(), expected.clone());
            step::<NonBlocking, C, _>(self, async |conn| {
                write::execute::<M, NonBlocking, C, _>(conn, "DELETE", statement, key, expected)
                    .await
            })
        }

        async fn occ_update_all(
            &mut self,
            models: &mut [M],
            all_or_nothing: bool,
        ) -> Result<BatchReport<M>, OccError> {
            let shared: &[M] = models;
            let outcomes = step::<NonBlocking, C, _>(self, async |conn| {
                batch::update_all::<M, NonBlocking, C>(conn, shared, partial(all_or_nothing)).await
            })
            .await?;
            Ok(batch::settle_update(models, outcomes))
        }

        async fn occ_delete_all(
            &mut self,
            models: &[M],
            all_or_nothing: bool,
        ) -> Result<BatchReport<M>, OccError> {
            let outcomes = step::<NonBlocking, C, _>(self, async |conn| {
                batch::delete_all::<M, NonBlocking, C>(conn, models, partial(all_or_nothing)).await
            })
            .await?;
            Ok(batch::settle_delete(models, outcomes))
        }
    }

    /// A diesel-async connection that runs guarded updates of model `M`:
    /// the async [`GuardedStore`](super::GuardedStore), for every
    /// [`AsyncOccConnection`] and every `#[derive(Optimistic)]` model with
    /// owned fields; its futures are `Send`.
    #[diagnostic::on_unimplemented(
        message = "occ cannot run a guarded update of `{M}` on `{Self}`",
        label = "needs a diesel-async connection occ runs on, and a guard and changes of the model's table",
        note = "the guard is a boolean expression on the model's table (`products::qty.ge(n)`), the changes a diesel changeset of it (`products::qty.eq(products::qty - n)`); both are sent twice when the update matches nothing, so they must be `Clone` and `Send`"
    )]
    pub trait AsyncGuardedStore<M: Optimistic, Guard, Changes>: AsyncOccConnection {
        #[doc(hidden)]
        fn occ_update_where(
            &mut self,
            key: M::Key,
            guard: Guard,
            changes: Changes,
        ) -> impl Future<Output = Result<(), OccError>> + Send;
    }

    // Hidden: its where-clauses are occ's statement types.
    #[doc(hidden)]
    impl<M, C, G, S> AsyncGuardedStore<M, G, S> for C
    where
        M: SendModel,
        C: AsyncOccConnection,
        G: Clone + Send + Sync,
        S: Clone + Send + Sync,
        GuardedUpdate<M, G, S>: ExecuteDsl<C>,
        GuardProbe<M, G>: AsyncLoad<C, i32>,
    {
        fn occ_update_where(
            &mut self,
            key: M::Key,
            guard: G,
            changes: S,
        ) -> impl Future<Output = Result<(), OccError>> + Send {
            step::<NonBlocking, C, _>(self, async |conn| {
                write::update_where::<M, NonBlocking, C, G, S>(conn, key, guard, changes).await
            })
        }
    }

    /// A diesel-async connection that also reads rows of model `M` back:
    /// every [`AsyncStore`] of a model that derives diesel's `Selectable`.
    /// The async [`Reload`](super::Reload).
    #[diagnostic::on_unimplemented(
        message = "occ cannot read `{M}` back on `{Self}`",
        label = "needs a diesel-async connection occ runs on, and a model that derives diesel's `Selectable`",
        note = "`reload` and `update_versioned_or_current` load the model with `Model::as_select()`: add `Selectable` (and `Queryable`) to its derives"
    )]
    pub trait AsyncReload<M: Optimistic>: AsyncStore<M> {
        #[doc(hidden)]
        fn occ_reload(&mut self, key: M::Key) -> impl Future<Output = Result<M, OccError>> + Send;

        #[doc(hidden)]
        fn occ_update_or_current(
            &mut self,
            key: M::Key,
            expected: &M::Version,
            changes: M::Changeset,
            next: M::Version,
        ) -> impl Future<Output = Result<Result<M::Version, M>, OccError>> + Send;

        #[doc(hidden)]
        fn occ_modify<E, F>(
            &mut self,
            key: M::Key,
            first: Option<M>,
            policy: &ModifyPolicy,
            body: F,
        ) -> impl Future<Output = Result<M, E>> + Send
        where
            E: From<OccError> + AsOccError + Send,
            F: FnMut(&mut M) -> Result<(), E> + Send;
    }

    // Hidden: its where-clauses are occ's statement types, which a reader
    // cannot look up; the trait's docs say what implements it.
    #[doc(hidden)]
    impl<M, C> AsyncReload<M> for C
    where
        M: SendModel + Selectable<C::Backend>,
        C: AsyncStore<M>,
        FindStatement<M, C::Backend>: AsyncLoad<C, M>,
        UpdateOrCurrent<M, M::Changeset, C::Backend>: AsyncLoad<C, (M, bool)>,
        CurrentRow<M, C::Backend>: AsyncLoad<C, M>,
        FindStatement<M, C::Backend, ForModify>: AsyncLoad<C, M>,
        UpdateStatement<M, M::Changeset>: ExecuteDsl<C>,
        UpdateReturning<M, M::Changeset>: AsyncLoad<C, M::Version>,
        VersionProbe<M>: AsyncLoad<C, M::Version>,
    {
        fn occ_modify<E, F>(
            &mut self,
            key: M::Key,
            first: Option<M>,
            policy: &ModifyPolicy,
            body: F,
        ) -> impl Future<Output = Result<M, E>> + Send
        where
            E: From<OccError> + AsOccError + Send,
            F: FnMut(&mut M) -> Result<(), E> + Send,
        {
            modify::modify::<M, NonBlocking, C, C::Backend, E, F>(self, key, first, policy, body)
        }

        fn occ_reload(&mut self, key: M::Key) -> impl Future<Output = Result<M, OccError>> + Send {
            step::<NonBlocking, C, _>(self, async |conn| {
                write::reload::<M, NonBlocking, C, C::Backend>(conn, key).await
            })
        }

        fn occ_update_or_current(
            &mut self,
            key: M::Key,
            expected: &M::Version,
            changes: M::Changeset,
            next: M::Version,
        ) -> impl Future<Output = Result<Result<M::Version, M>, OccError>> + Send {
            step::<NonBlocking, C, _>(self, async |conn| {
                write::update_or_current::<M, NonBlocking, C, C::Backend, _>(
                    conn, key, expected, changes, next,
                )
                .await
            })
        }
    }
}
