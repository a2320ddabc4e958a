//! What every `#[derive(Optimistic)]` model can do on a diesel-async
//! connection: the methods of [`OptimisticDsl`](crate::OptimisticDsl), with
//! the same names, awaited. The statements, their outcome and the lock steps
//! are the ones the sync methods run.

use core::future::Future;

use diesel::query_builder::AsChangeset;
use diesel::Selectable;
use diesel_async::methods::{ExecuteDsl, LoadQuery};

use crate::backend::{AsyncOccConnection, RowLocking};
use crate::batch::{self, BatchDelete, BatchProbe, BatchReport, BatchUpdate, Partial};
use crate::error::OccError;
use crate::exec::NonBlocking;
use crate::lock::builder::{LockDsl, Locked};
use crate::lock::{ByKey, Exclusive, RunLocked, Shared};
use crate::model::Optimistic;
use crate::query::{
    delete_statement, CurrentRow, DeleteStatement, FindStatement, UpdateOrCurrent, UpdateReturning,
    UpdateStatement, VersionProbe,
};
use crate::transaction::step;
use crate::version::Version;
use crate::write;

/// Versioned writes, reload and row locks on diesel-async connections
/// (`AsyncPgConnection`, `AsyncMysqlConnection`,
/// `SyncConnectionWrapper<SqliteConnection>`, and pooled ones as
/// `&mut pooled`); implemented for every `#[derive(Optimistic)]` model and
/// brought in by `occ::async_prelude`. Each method sends what its
/// [`OptimisticDsl`](crate::OptimisticDsl) namesake sends and returns the
/// same results and errors.
///
/// Every future is `Send`: it can be spawned and awaited in a web handler.
/// For that, a model and the pieces of its statements must be `Send` and
/// `Sync`, as every model with owned fields is.
pub trait AsyncOptimisticDsl:
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
{
    /// Writes every writable field and the next version, if the row still has
    /// the version this model holds; on success `self` holds the new version.
    fn update_versioned<C>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        UpdateStatement<Self, Self::Changeset>: ExecuteDsl<C>,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        async move {
            let next = self.version().next();
            let (key, changes) = (self.key(), self.changeset());
            let expected = self.version();
            let stored = step::<NonBlocking, C, _>(conn, async |conn| {
                write::update::<Self, NonBlocking, C, _>(conn, key, expected, changes, next).await
            })
            .await?;
            self.set_version(stored);
            Ok(())
        }
    }

    /// Writes as [`update_versioned`](Self::update_versioned); a row found at
    /// another version is returned as it is now (`Some`) instead of an
    /// error. The same statements as
    /// [`OptimisticDsl::update_versioned_or_current`](crate::OptimisticDsl::update_versioned_or_current).
    fn update_versioned_or_current<C>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<Option<Self>, OccError>> + Send
    where
        C: AsyncOccConnection,
        Self: Selectable<C::Backend> + 'static,
        UpdateOrCurrent<Self, Self::Changeset, C::Backend>:
            LoadQuery<'static, C, (Self, bool)> + Send + 'static,
        UpdateStatement<Self, Self::Changeset>: ExecuteDsl<C>,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
        CurrentRow<Self, C::Backend>: LoadQuery<'static, C, Self> + Send + 'static,
    {
        async move {
            let next = self.version().next();
            let (key, changes) = (self.key(), self.changeset());
            let expected = self.version();
            let current = step::<NonBlocking, C, _>(conn, async |conn| {
                write::update_or_current::<Self, NonBlocking, C, C::Backend, _>(
                    conn, key, expected, changes, next,
                )
                .await
            })
            .await?;
            match current {
                Ok(stored) => {
                    self.set_version(stored);
                    Ok(None)
                }
                Err(current) => Ok(Some(current)),
            }
        }
    }

    /// Deletes the row if it still has the version this model holds.
    fn delete_versioned<C>(&self, conn: &mut C) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        DeleteStatement<Self>: ExecuteDsl<C>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        let statement = delete_statement::<Self>(self.key(), self.version().clone());
        step::<NonBlocking, C, _>(conn, async |conn| {
            write::execute::<Self, NonBlocking, C, _>(conn, statement, self.key(), self.version())
                .await
        })
    }

    /// Moves the version forward without writing anything else, if the row
    /// still has the version this model holds.
    fn bump_version<C>(&mut self, conn: &mut C) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        UpdateStatement<Self, ()>: ExecuteDsl<C>,
        UpdateReturning<Self, ()>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        async move {
            let next = self.version().next();
            let key = self.key();
            let expected = self.version();
            let stored = step::<NonBlocking, C, _>(conn, async |conn| {
                write::update::<Self, NonBlocking, C, _>(conn, key, expected, (), next).await
            })
            .await?;
            self.set_version(stored);
            Ok(())
        }
    }

    /// Writes every model whose row still has the model's version and
    /// reports per row what happened; the models written hold their new
    /// versions. The same statements and outcome as
    /// [`OptimisticDsl::update_versioned_all`](crate::OptimisticDsl::update_versioned_all).
    fn update_versioned_all<C>(
        conn: &mut C,
        models: &mut [Self],
    ) -> impl Future<Output = Result<BatchReport<Self>, OccError>> + Send
    where
        C: AsyncOccConnection,
        BatchUpdate<Self>: LoadQuery<'static, C, i32> + 'static,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)> + 'static,
        UpdateStatement<Self, Self::Changeset>: ExecuteDsl<C>,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        update_all(conn, models, Partial::Commit)
    }

    /// Writes every model, or none: the first row found at another version
    /// or gone rolls the batch back and is the error. The same as
    /// [`OptimisticDsl::update_versioned_all_or_nothing`](crate::OptimisticDsl::update_versioned_all_or_nothing).
    fn update_versioned_all_or_nothing<C>(
        conn: &mut C,
        models: &mut [Self],
    ) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        BatchUpdate<Self>: LoadQuery<'static, C, i32> + 'static,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)> + 'static,
        UpdateStatement<Self, Self::Changeset>: ExecuteDsl<C>,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        async move { update_all(conn, models, Partial::RollBack).await.map(drop) }
    }

    /// Deletes the row of every model that still has the model's version
    /// and reports per row what happened. The same as
    /// [`OptimisticDsl::delete_versioned_all`](crate::OptimisticDsl::delete_versioned_all).
    fn delete_versioned_all<C>(
        conn: &mut C,
        models: &[Self],
    ) -> impl Future<Output = Result<BatchReport<Self>, OccError>> + Send
    where
        C: AsyncOccConnection,
        BatchDelete<Self>: LoadQuery<'static, C, i32> + 'static,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)> + 'static,
        DeleteStatement<Self>: ExecuteDsl<C>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        async move {
            let outcomes = step::<NonBlocking, C, _>(conn, async |conn| {
                batch::delete_all::<Self, NonBlocking, C>(conn, models, Partial::Commit).await
            })
            .await?;
            Ok(batch::settle_delete(models, outcomes))
        }
    }

    /// Deletes the row of every model, or none. The same as
    /// [`OptimisticDsl::delete_versioned_all_or_nothing`](crate::OptimisticDsl::delete_versioned_all_or_nothing).
    fn delete_versioned_all_or_nothing<C>(
        conn: &mut C,
        models: &[Self],
    ) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        BatchDelete<Self>: LoadQuery<'static, C, i32> + 'static,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)> + 'static,
        DeleteStatement<Self>: ExecuteDsl<C>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        step::<NonBlocking, C, _>(conn, async |conn| {
            batch::delete_all::<Self, NonBlocking, C>(conn, models, Partial::RollBack)
                .await
                .map(drop)
        })
    }

    /// Reads every field of this row again.
    fn reload<C>(&mut self, conn: &mut C) -> impl Future<Output = Result<(), OccError>> + Send
    where
        C: AsyncOccConnection,
        Self: Selectable<C::Backend> + 'static,
        FindStatement<Self, C::Backend>: LoadQuery<'static, C, Self> + Send + 'static,
    {
        async move {
            let key = self.key();
            *self = step::<NonBlocking, C, _>(conn, async |conn| {
                write::reload::<Self, NonBlocking, C, C::Backend>(conn, key).await
            })
            .await?;
            Ok(())
        }
    }

    /// Applies `changes` and the next version to the row with `key`, if it has
    /// version `expected`; returns the new version.
    ///
    /// Unlike the sync method, `changes` must own its values (`'static`):
    /// pass the changeset struct or the `(column.eq(value), ..)` tuple by
    /// value, not `&input`. The future of a write generic over the backend
    /// must be `Send` for every lifetime rustc erases inside it, which a
    /// borrowed changeset does not meet (rust-lang/rust#100013).
    fn update_if_version<C, S>(
        conn: &mut C,
        key: Self::Key,
        expected: Self::Version,
        changes: S,
    ) -> impl Future<Output = Result<Self::Version, OccError>> + Send
    where
        C: AsyncOccConnection,
        S: AsChangeset<Target = Self::Table, Changeset: Send>,
        UpdateStatement<Self, S::Changeset>: ExecuteDsl<C>,
        UpdateReturning<Self, S::Changeset>: LoadQuery<'static, C, Self::Version> + 'static,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version> + 'static,
    {
        let changes = changes.as_changeset();
        async move {
            let next = expected.next();
            step::<NonBlocking, C, _>(conn, async |conn| {
                write::update::<Self, NonBlocking, C, _>(conn, key, &expected, changes, next).await
            })
            .await
        }
    }

    /// The row with `key`, to lock with the builders of [`LockDsl`]; the same
    /// as [`OptimisticDsl::lock`](crate::OptimisticDsl::lock).
    fn lock(key: Self::Key) -> ByKey<Self> {
        ByKey { key }
    }

    /// Reads the row with `key` and locks it `FOR UPDATE` until the
    /// transaction ends; [`OccError::NotFound`] if there is none,
    /// [`OccError::NotInTransaction`] outside a transaction.
    fn find_exclusive<'c, C>(
        conn: &'c mut C,
        key: Self::Key,
    ) -> impl Future<Output = Result<Self, OccError>> + Send
    where
        C: RowLocking,
        Locked<ByKey<Self>, Exclusive>: RunLocked<
            C,
            Self,
            NonBlocking,
            One<'c>: Future<Output = Result<Self, OccError>> + Send,
        >,
    {
        Self::lock(key).exclusive().run_get_result(conn)
    }

    /// Reads the row with `key` and locks it `FOR SHARE` (`LOCK IN SHARE
    /// MODE` on MariaDB) until the transaction ends.
    fn find_shared<'c, C>(
        conn: &'c mut C,
        key: Self::Key,
    ) -> impl Future<Output = Result<Self, OccError>> + Send
    where
        C: RowLocking,
        Locked<ByKey<Self>, Shared>: RunLocked<
            C,
            Self,
            NonBlocking,
            One<'c>: Future<Output = Result<Self, OccError>> + Send,
        >,
    {
        Self::lock(key).shared().run_get_result(conn)
    }
}

/// The batch update behind both forms: the report, with the new versions
/// stored in the models written.
async fn update_all<M, C>(
    conn: &mut C,
    models: &mut [M],
    partial: Partial,
) -> Result<BatchReport<M>, OccError>
where
    M: AsyncOptimisticDsl,
    C: AsyncOccConnection,
    BatchUpdate<M>: LoadQuery<'static, C, i32> + 'static,
    BatchProbe<M>: LoadQuery<'static, C, (i32, Option<M::Version>)> + 'static,
    UpdateStatement<M, M::Changeset>: ExecuteDsl<C>,
    UpdateReturning<M, M::Changeset>: LoadQuery<'static, C, M::Version> + 'static,
    VersionProbe<M>: LoadQuery<'static, C, M::Version> + 'static,
{
    let shared: &[M] = models;
    let outcomes = step::<NonBlocking, C, _>(conn, async |conn| {
        batch::update_all::<M, NonBlocking, C>(conn, shared, partial).await
    })
    .await?;
    Ok(batch::settle_update(models, outcomes))
}

impl<M> AsyncOptimisticDsl for M where
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
{
}
