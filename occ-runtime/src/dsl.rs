//! What every `#[derive(Optimistic)]` model can do: versioned writes, reload
//! and row locks by key.

use diesel::connection::LoadConnection;
use diesel::query_builder::{AsChangeset, QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::{Connection, Selectable};

use crate::backend::RowLocking;
use crate::error::OccError;
use crate::exec::{block_on, Blocking};
use crate::lock::builder::{LockDsl, Locked};
use crate::lock::{ByKey, Exclusive, RunLocked, Shared};
use crate::model::Optimistic;
use crate::query::{
    delete_statement, DeleteStatement, FindStatement, UpdateStatement, VersionProbe,
};
use crate::version::Version;
use crate::write;

/// Versioned writes, reload and row locks on sync diesel connections;
/// implemented for every `#[derive(Optimistic)]` model and brought in by
/// `occ::prelude`.
///
/// Each write is one statement whose `WHERE` clause checks the version the
/// model holds. On success the model holds the new version; on failure it is
/// unchanged, and one extra read tells [`OccError::Conflict`] (with the version
/// found) from [`OccError::NotFound`].
pub trait OptimisticDsl: Optimistic {
    /// Writes every writable field and the next version, if the row still has
    /// the version this model holds.
    ///
    /// One round trip on success. On success `self`'s version field holds the
    /// new version; on failure nothing is written and `self` is unchanged.
    fn update_versioned<C>(&mut self, conn: &mut C) -> Result<(), OccError>
    where
        C: Connection + LoadConnection,
        UpdateStatement<Self, Self::Changeset>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = self.version().next();
        block_on(write::update::<Self, Blocking, C, _>(
            conn,
            self.key(),
            self.version(),
            self.changeset(),
            next.clone(),
        ))?;
        self.set_version(next);
        Ok(())
    }

    /// Deletes the row if it still has the version this model holds.
    fn delete_versioned<C>(&self, conn: &mut C) -> Result<(), OccError>
    where
        C: Connection + LoadConnection,
        DeleteStatement<Self>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let statement = delete_statement::<Self>(self.key(), self.version().clone());
        block_on(write::execute::<Self, Blocking, C, _>(
            conn,
            statement,
            self.key(),
            self.version(),
        ))
    }

    /// Moves the version forward without writing anything else, if the row still
    /// has the version this model holds: marks an aggregate as changed when only
    /// its children were written, so concurrent writers of the aggregate conflict.
    fn bump_version<C>(&mut self, conn: &mut C) -> Result<(), OccError>
    where
        C: Connection + LoadConnection,
        UpdateStatement<Self, ()>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = self.version().next();
        block_on(write::update::<Self, Blocking, C, _>(
            conn,
            self.key(),
            self.version(),
            (),
            next.clone(),
        ))?;
        self.set_version(next);
        Ok(())
    }

    /// Reads every field of this row again.
    fn reload<C>(&mut self, conn: &mut C) -> Result<(), OccError>
    where
        C: Connection + LoadConnection,
        Self: Selectable<C::Backend>,
        FindStatement<Self, C::Backend>: LoadQuery<'static, C, Self>,
    {
        *self = block_on(write::reload::<Self, Blocking, C, C::Backend>(
            conn,
            self.key(),
        ))?;
        Ok(())
    }

    /// Applies `changes` (any diesel `AsChangeset` for the model's table) and the
    /// next version to the row with `key`, if it has version `expected`; returns
    /// the new version.
    fn update_if_version<C, S>(
        conn: &mut C,
        key: Self::Key,
        expected: Self::Version,
        changes: S,
    ) -> Result<Self::Version, OccError>
    where
        C: Connection + LoadConnection,
        S: AsChangeset<Target = Self::Table>,
        UpdateStatement<Self, S::Changeset>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = expected.next();
        block_on(write::update::<Self, Blocking, C, _>(
            conn,
            key,
            &expected,
            changes.as_changeset(),
            next.clone(),
        ))?;
        Ok(next)
    }

    /// The row with `key`, to lock with the builders of [`LockDsl`]:
    /// `Product::lock(7).exclusive().nowait().get_result(conn)`. A missing row
    /// is [`OccError::NotFound`] with the table and key.
    fn lock(key: Self::Key) -> ByKey<Self> {
        ByKey { key }
    }

    /// Reads the row with `key` and locks it `FOR UPDATE` until the transaction
    /// ends; [`OccError::NotFound`] if there is none,
    /// [`OccError::NotInTransaction`] outside a transaction. Short for
    /// `Self::lock(key).exclusive().get_result(conn)`.
    fn find_exclusive<'c, C>(conn: &'c mut C, key: Self::Key) -> Result<Self, OccError>
    where
        C: RowLocking,
        Locked<ByKey<Self>, Exclusive>:
            RunLocked<C, Self, Blocking, One<'c> = Result<Self, OccError>>,
    {
        Self::lock(key).exclusive().run_get_result(conn)
    }

    /// Reads the row with `key` and locks it `FOR SHARE` (`LOCK IN SHARE MODE`
    /// on MariaDB) until the transaction ends. Short for
    /// `Self::lock(key).shared().get_result(conn)`.
    fn find_shared<'c, C>(conn: &'c mut C, key: Self::Key) -> Result<Self, OccError>
    where
        C: RowLocking,
        Locked<ByKey<Self>, Shared>: RunLocked<C, Self, Blocking, One<'c> = Result<Self, OccError>>,
    {
        Self::lock(key).shared().run_get_result(conn)
    }
}

impl<M: Optimistic> OptimisticDsl for M {}
