//! What every `#[derive(Optimistic)]` model can do on a diesel-async
//! connection: the methods of [`OptimisticDsl`](crate::OptimisticDsl), with
//! the same names, awaited. The statements, their outcome and the lock steps
//! are the ones the sync methods run.

use core::future::Future;

use diesel::expression::{AppearsOnTable, Expression};
use diesel::query_builder::AsChangeset;
use diesel::sql_types::BoolOrNullableBool;

use crate::backend::RowLocking;
use crate::batch::BatchReport;
use crate::error::{AsOccError, OccError};
use crate::lock::builder::{LockDsl, Locked};
use crate::lock::{ByKey, Exclusive, RunLocked, Shared};
use crate::model::Optimistic;
use crate::modify::ModifyPolicy;
use crate::store::{AsyncGuardedStore, AsyncReload, AsyncStore};
use crate::version::Version;

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
    fn update_versioned<C: AsyncStore<Self>>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        async move {
            let next = self.version().next();
            let stored = conn
                .occ_update(self.key(), self.version(), self.changeset(), next)
                .await?;
            self.set_version(stored);
            Ok(())
        }
    }

    /// Writes as [`update_versioned`](Self::update_versioned); a row found at
    /// another version is returned as it is now (`Some`) instead of an
    /// error. The same statements as
    /// [`OptimisticDsl::update_versioned_or_current`](crate::OptimisticDsl::update_versioned_or_current).
    fn update_versioned_or_current<C: AsyncReload<Self>>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<Option<Self>, OccError>> + Send {
        async move {
            let next = self.version().next();
            let current = conn
                .occ_update_or_current(self.key(), self.version(), self.changeset(), next)
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
    fn delete_versioned<C: AsyncStore<Self>>(
        &self,
        conn: &mut C,
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        conn.occ_delete(self.key(), self.version())
    }

    /// Moves the version forward without writing anything else, if the row
    /// still has the version this model holds.
    fn bump_version<C: AsyncStore<Self, ()>>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        async move {
            let next = self.version().next();
            let stored = conn
                .occ_update(self.key(), self.version(), (), next)
                .await?;
            self.set_version(stored);
            Ok(())
        }
    }

    /// Writes every model whose row still has the model's version and
    /// reports per row what happened; the models written hold their new
    /// versions. The same statements and outcome as
    /// [`OptimisticDsl::update_versioned_all`](crate::OptimisticDsl::update_versioned_all).
    fn update_versioned_all<C: AsyncStore<Self>>(
        conn: &mut C,
        models: &mut [Self],
    ) -> impl Future<Output = Result<BatchReport<Self>, OccError>> + Send {
        conn.occ_update_all(models, false)
    }

    /// Writes every model, or none: the first row found at another version
    /// or gone rolls the batch back and is the error. The same as
    /// [`OptimisticDsl::update_versioned_all_or_nothing`](crate::OptimisticDsl::update_versioned_all_or_nothing).
    fn update_versioned_all_or_nothing<C: AsyncStore<Self>>(
        conn: &mut C,
        models: &mut [Self],
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        async move { conn.occ_update_all(models, true).await.map(drop) }
    }

    /// Deletes the row of every model that still has the model's version
    /// and reports per row what happened. The same as
    /// [`OptimisticDsl::delete_versioned_all`](crate::OptimisticDsl::delete_versioned_all).
    fn delete_versioned_all<C: AsyncStore<Self>>(
        conn: &mut C,
        models: &[Self],
    ) -> impl Future<Output = Result<BatchReport<Self>, OccError>> + Send {
        conn.occ_delete_all(models, false)
    }

    /// Deletes the row of every model, or none. The same as
    /// [`OptimisticDsl::delete_versioned_all_or_nothing`](crate::OptimisticDsl::delete_versioned_all_or_nothing).
    fn delete_versioned_all_or_nothing<C: AsyncStore<Self>>(
        conn: &mut C,
        models: &[Self],
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        async move { conn.occ_delete_all(models, true).await.map(drop) }
    }

    /// Reads every field of this row again.
    fn reload<C: AsyncReload<Self>>(
        &mut self,
        conn: &mut C,
    ) -> impl Future<Output = Result<(), OccError>> + Send {
        async move {
            *self = conn.occ_reload(self.key()).await?;
            Ok(())
        }
    }

    /// Applies `changes` (any diesel `AsChangeset` for the model's table, by
    /// value or borrowed: `&input`, `column.eq(&value)`) and the next
    /// version to the row with `key`, if it has version `expected`; returns
    /// the new version. The same as
    /// [`OptimisticDsl::update_if_version`](crate::OptimisticDsl::update_if_version).
    fn update_if_version<C, S>(
        conn: &mut C,
        key: Self::Key,
        expected: Self::Version,
        changes: S,
    ) -> impl Future<Output = Result<Self::Version, OccError>> + Send
    where
        S: AsChangeset<Target = Self::Table, Changeset: Send>,
        C: AsyncStore<Self, S::Changeset>,
    {
        let changes = changes.as_changeset();
        async move {
            let next = expected.next();
            conn.occ_update(key, &expected, changes, next).await
        }
    }

    /// Reads the row with `key`, lets `change` change it, and writes it
    /// versioned, again on a conflict, reading each row plainly or locked as
    /// its temperature says; the same as
    /// [`OptimisticDsl::modify`](crate::OptimisticDsl::modify). `change` is
    /// a plain closure, as there.
    fn modify<C, E, F>(
        conn: &mut C,
        key: Self::Key,
        change: F,
    ) -> impl Future<Output = Result<Self, E>> + Send
    where
        C: AsyncReload<Self>,
        E: From<OccError> + AsOccError + Send,
        F: FnMut(&mut Self) -> Result<(), E> + Send,
    {
        async move {
            conn.occ_modify(key, None, &ModifyPolicy::default(), change)
                .await
        }
    }

    /// [`modify`](Self::modify) under `policy`; the same as
    /// [`OptimisticDsl::modify_with`](crate::OptimisticDsl::modify_with).
    fn modify_with<C, E, F>(
        conn: &mut C,
        key: Self::Key,
        policy: &ModifyPolicy,
        change: F,
    ) -> impl Future<Output = Result<Self, E>> + Send
    where
        C: AsyncReload<Self>,
        E: From<OccError> + AsOccError + Send,
        F: FnMut(&mut Self) -> Result<(), E> + Send,
    {
        conn.occ_modify(key, None, policy, change)
    }

    /// [`modify`](Self::modify) starting from `row`, a copy the caller read
    /// (from a replica, say); the same as
    /// [`OptimisticDsl::modify_from`](crate::OptimisticDsl::modify_from).
    fn modify_from<C, E, F>(
        conn: &mut C,
        row: Self,
        change: F,
    ) -> impl Future<Output = Result<Self, E>> + Send
    where
        C: AsyncReload<Self>,
        E: From<OccError> + AsOccError + Send,
        F: FnMut(&mut Self) -> Result<(), E> + Send,
    {
        async move {
            conn.occ_modify(row.key(), Some(row), &ModifyPolicy::default(), change)
                .await
        }
    }

    /// [`modify_from`](Self::modify_from) under `policy`.
    fn modify_from_with<C, E, F>(
        conn: &mut C,
        row: Self,
        policy: &ModifyPolicy,
        change: F,
    ) -> impl Future<Output = Result<Self, E>> + Send
    where
        C: AsyncReload<Self>,
        E: From<OccError> + AsOccError + Send,
        F: FnMut(&mut Self) -> Result<(), E> + Send,
    {
        conn.occ_modify(row.key(), Some(row), policy, change)
    }

    /// Applies `changes` to the row with `key` where `guard` holds, and moves
    /// its version forward, in one statement that reads nothing first; the
    /// same as [`OptimisticDsl::update_where`](crate::OptimisticDsl::update_where).
    fn update_where<C, G, S>(
        conn: &mut C,
        key: Self::Key,
        guard: G,
        changes: S,
    ) -> impl Future<Output = Result<(), OccError>> + Send
    where
        G: Expression<SqlType: BoolOrNullableBool> + AppearsOnTable<Self::Table>,
        S: AsChangeset<Target = Self::Table>,
        C: AsyncGuardedStore<Self, G, S::Changeset>,
    {
        conn.occ_update_where(key, guard, changes.as_changeset())
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
        Locked<ByKey<Self>, Exclusive>:
            RunLocked<C, Self, C::Kind, One<'c>: Future<Output = Result<Self, OccError>> + Send>,
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
        Locked<ByKey<Self>, Shared>:
            RunLocked<C, Self, C::Kind, One<'c>: Future<Output = Result<Self, OccError>> + Send>,
    {
        Self::lock(key).shared().run_get_result(conn)
    }
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
