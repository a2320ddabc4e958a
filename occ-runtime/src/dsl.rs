//! What every `#[derive(Optimistic)]` model can do: versioned writes, reload
//! and row locks by key.

use diesel::connection::LoadConnection;
use diesel::query_builder::{AsChangeset, QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::{Connection, Selectable};

use crate::backend::{OccConnection, RowLocking};
use crate::batch::{self, BatchDelete, BatchProbe, BatchReport, BatchUpdate, Partial};
use crate::error::OccError;
use crate::exec::{block_on, Blocking};
use crate::lock::builder::{LockDsl, Locked};
use crate::lock::{ByKey, Exclusive, RunLocked, Shared};
use crate::model::Optimistic;
use crate::query::{
    delete_statement, CurrentRow, DeleteStatement, FindStatement, UpdateOrCurrent, UpdateReturning,
    UpdateStatement, VersionProbe,
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
    fn update_versioned<'q, C>(&mut self, conn: &mut C) -> Result<(), OccError>
    where
        C: OccConnection,
        UpdateStatement<Self, Self::Changeset>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = self.version().next();
        let stored = block_on(write::update::<Self, Blocking, C, _>(
            conn,
            self.key(),
            self.version(),
            self.changeset(),
            next,
        ))?;
        self.set_version(stored);
        Ok(())
    }

    /// [`update_versioned`](Self::update_versioned), except that a row found
    /// at another version is not an error: returns `Some` of the row as it
    /// is now, for a merge or a diff, without another round trip to read
    /// it. `None` when the write succeeded (`self` then holds the new
    /// version); [`OccError::NotFound`] when the row is gone.
    ///
    /// On PostgreSQL this is one statement either way (the update inside a
    /// `WITH`, and a read of the row in the same statement); on MySQL,
    /// MariaDB and SQLite the update, and on a conflict one read of the row
    /// (against three statements for `update_versioned`, its probe and a
    /// `reload`).
    ///
    /// The README's "Conflicts with the current row" shows it at work.
    fn update_versioned_or_current<'q, C>(&mut self, conn: &mut C) -> Result<Option<Self>, OccError>
    where
        C: OccConnection,
        Self: Selectable<C::Backend>,
        UpdateOrCurrent<Self, Self::Changeset, C::Backend>: LoadQuery<'static, C, (Self, bool)>,
        UpdateStatement<Self, Self::Changeset>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
        CurrentRow<Self, C::Backend>: LoadQuery<'static, C, Self>,
    {
        let next = self.version().next();
        let written = block_on(
            write::update_or_current::<Self, Blocking, C, C::Backend, _>(
                conn,
                self.key(),
                self.version(),
                self.changeset(),
                next,
            ),
        )?;
        match written {
            Ok(stored) => {
                self.set_version(stored);
                Ok(None)
            }
            Err(current) => Ok(Some(current)),
        }
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
    fn bump_version<'q, C>(&mut self, conn: &mut C) -> Result<(), OccError>
    where
        C: OccConnection,
        UpdateStatement<Self, ()>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, ()>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = self.version().next();
        let stored = block_on(write::update::<Self, Blocking, C, _>(
            conn,
            self.key(),
            self.version(),
            (),
            next,
        ))?;
        self.set_version(stored);
        Ok(())
    }

    /// Writes every model of `models` whose row still has the model's
    /// version, as [`update_versioned`](Self::update_versioned) would one by
    /// one, and reports per row what happened.
    ///
    /// The models written hold their new versions; the others are
    /// unchanged. The rows written stay written even when others failed
    /// (see [`update_versioned_all_or_nothing`](Self::update_versioned_all_or_nothing)
    /// for the other choice). The batch runs in one transaction (a
    /// savepoint inside the caller's). On PostgreSQL it is one statement per
    /// chunk of rows, plus one read of the versions of the rows not written,
    /// if any; on MySQL, MariaDB and SQLite one versioned write per row.
    /// A batch that holds a key twice is refused
    /// ([`OccError::DuplicateInBatch`]) before anything is sent.
    ///
    /// The README's "Many rows at once" shows it at work.
    fn update_versioned_all<'q, C>(
        conn: &mut C,
        models: &mut [Self],
    ) -> Result<BatchReport<Self>, OccError>
    where
        C: OccConnection,
        BatchUpdate<Self>: LoadQuery<'static, C, i32>,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)>,
        UpdateStatement<Self, Self::Changeset>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        update_all(conn, models, Partial::Commit)
    }

    /// Writes every model of `models`, or none: the first row found at
    /// another version or gone rolls the whole batch back and is the error
    /// ([`OccError::Conflict`] or [`OccError::NotFound`], as its single
    /// write would say), and every model is left unchanged. Otherwise as
    /// [`update_versioned_all`](Self::update_versioned_all).
    fn update_versioned_all_or_nothing<'q, C>(
        conn: &mut C,
        models: &mut [Self],
    ) -> Result<(), OccError>
    where
        C: OccConnection,
        BatchUpdate<Self>: LoadQuery<'static, C, i32>,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)>,
        UpdateStatement<Self, Self::Changeset>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, Self::Changeset>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        update_all(conn, models, Partial::RollBack).map(drop)
    }

    /// Deletes the row of every model of `models` that still has the
    /// model's version, and reports per row what happened; the rows deleted
    /// stay deleted even when others failed. One transaction; on PostgreSQL
    /// one statement per chunk, elsewhere one versioned delete per row.
    fn delete_versioned_all<C>(conn: &mut C, models: &[Self]) -> Result<BatchReport<Self>, OccError>
    where
        C: OccConnection,
        BatchDelete<Self>: LoadQuery<'static, C, i32>,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)>,
        DeleteStatement<Self>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let outcomes = block_on(batch::delete_all::<Self, Blocking, C>(
            conn,
            models,
            Partial::Commit,
        ))?;
        Ok(batch::settle_delete(models, outcomes))
    }

    /// Deletes the row of every model of `models`, or none: the first row
    /// found at another version or gone rolls the batch back and is the
    /// error.
    fn delete_versioned_all_or_nothing<C>(conn: &mut C, models: &[Self]) -> Result<(), OccError>
    where
        C: OccConnection,
        BatchDelete<Self>: LoadQuery<'static, C, i32>,
        BatchProbe<Self>: LoadQuery<'static, C, (i32, Option<Self::Version>)>,
        DeleteStatement<Self>: QueryFragment<C::Backend> + QueryId,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        block_on(batch::delete_all::<Self, Blocking, C>(
            conn,
            models,
            Partial::RollBack,
        ))
        .map(drop)
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
    fn update_if_version<'q, C, S>(
        conn: &mut C,
        key: Self::Key,
        expected: Self::Version,
        changes: S,
    ) -> Result<Self::Version, OccError>
    where
        C: OccConnection,
        S: AsChangeset<Target = Self::Table>,
        UpdateStatement<Self, S::Changeset>: QueryFragment<C::Backend> + QueryId,
        UpdateReturning<Self, S::Changeset>: LoadQuery<'q, C, Self::Version>,
        VersionProbe<Self>: LoadQuery<'static, C, Self::Version>,
    {
        let next = expected.next();
        block_on(write::update::<Self, Blocking, C, _>(
            conn,
            key,
            &expected,
            changes.as_changeset(),
            next,
        ))
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

/// The batch update behind both forms: the report, with the new versions
/// stored in the models written.
fn update_all<'q, M, C>(
    conn: &mut C,
    models: &mut [M],
    partial: Partial,
) -> Result<BatchReport<M>, OccError>
where
    M: Optimistic,
    C: OccConnection,
    BatchUpdate<M>: LoadQuery<'static, C, i32>,
    BatchProbe<M>: LoadQuery<'static, C, (i32, Option<M::Version>)>,
    UpdateStatement<M, M::Changeset>: QueryFragment<C::Backend> + QueryId,
    UpdateReturning<M, M::Changeset>: LoadQuery<'q, C, M::Version>,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
{
    let outcomes = block_on(batch::update_all::<M, Blocking, C>(conn, models, partial))?;
    Ok(batch::settle_update(models, outcomes))
}
