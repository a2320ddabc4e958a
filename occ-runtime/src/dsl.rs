//! What every `#[derive(Optimistic)]` model can do: versioned writes, reload
//! and row locks by key.

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
use crate::store::{GuardedStore, Reload, Store};
use crate::version::Version;

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
    fn update_versioned<C: Store<Self>>(&mut self, conn: &mut C) -> Result<(), OccError> {
        let next = self.version().next();
        let stored = conn.occ_update(self.key(), self.version(), self.changeset(), next)?;
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
    /// The guide `occ::guide::versioned_writes` shows it at work.
    fn update_versioned_or_current<C: Reload<Self>>(
        &mut self,
        conn: &mut C,
    ) -> Result<Option<Self>, OccError> {
        let next = self.version().next();
        let written =
            conn.occ_update_or_current(self.key(), self.version(), self.changeset(), next)?;
        match written {
            Ok(stored) => {
                self.set_version(stored);
                Ok(None)
            }
            Err(current) => Ok(Some(current)),
        }
    }

    /// Deletes the row if it still has the version this model holds.
    fn delete_versioned<C: Store<Self>>(&self, conn: &mut C) -> Result<(), OccError> {
        conn.occ_delete(self.key(), self.version())
    }

    /// Moves the version forward without writing anything else, if the row still
    /// has the version this model holds: marks an aggregate as changed when only
    /// its children were written, so concurrent writers of the aggregate conflict.
    fn bump_version<C: Store<Self, ()>>(&mut self, conn: &mut C) -> Result<(), OccError> {
        let next = self.version().next();
        let stored = conn.occ_update(self.key(), self.version(), (), next)?;
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
    /// The guide `occ::guide::batches` shows it at work.
    fn update_versioned_all<C: Store<Self>>(
        conn: &mut C,
        models: &mut [Self],
    ) -> Result<BatchReport<Self>, OccError> {
        conn.occ_update_all(models, false)
    }

    /// Writes every model of `models`, or none: the first row found at
    /// another version or gone rolls the whole batch back and is the error
    /// ([`OccError::Conflict`] or [`OccError::NotFound`], as its single
    /// write would say), and every model is left unchanged. Otherwise as
    /// [`update_versioned_all`](Self::update_versioned_all).
    fn update_versioned_all_or_nothing<C: Store<Self>>(
        conn: &mut C,
        models: &mut [Self],
    ) -> Result<(), OccError> {
        conn.occ_update_all(models, true).map(drop)
    }

    /// Deletes the row of every model of `models` that still has the
    /// model's version, and reports per row what happened; the rows deleted
    /// stay deleted even when others failed. One transaction; on PostgreSQL
    /// one statement per chunk, elsewhere one versioned delete per row.
    fn delete_versioned_all<C: Store<Self>>(
        conn: &mut C,
        models: &[Self],
    ) -> Result<BatchReport<Self>, OccError> {
        conn.occ_delete_all(models, false)
    }

    /// Deletes the row of every model of `models`, or none: the first row
    /// found at another version or gone rolls the batch back and is the
    /// error.
    fn delete_versioned_all_or_nothing<C: Store<Self>>(
        conn: &mut C,
        models: &[Self],
    ) -> Result<(), OccError> {
        conn.occ_delete_all(models, true).map(drop)
    }

    /// Reads every field of this row again.
    fn reload<C: Reload<Self>>(&mut self, conn: &mut C) -> Result<(), OccError> {
        *self = conn.occ_reload(self.key())?;
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
        S: AsChangeset<Target = Self::Table>,
        C: Store<Self, S::Changeset>,
    {
        let next = expected.next();
        conn.occ_update(key, &expected, changes.as_changeset(), next)
    }

    /// Reads the row with `key`, lets `change` change it, and writes it
    /// versioned; on a conflict, all of it again with the row as it is
    /// then: the read-modify-write that occ runs for its caller. Returns the
    /// row as written, holding its new version.
    ///
    /// `change` may refuse with the caller's own error (`E`, as for
    /// [`retry`](crate::retry): it converts from [`OccError`] and gives it
    /// back through [`AsOccError`](crate::AsOccError)): nothing is written,
    /// the retry ends at once and the error comes back unchanged. It runs
    /// once per attempt, on a fresh read, so it must not keep state from one
    /// call to the next.
    ///
    /// ```text
    /// let product = Product::modify(conn, id, |p| {
    ///     if p.qty < n {
    ///         return Err(AppError::InsufficientStock { left: p.qty });
    ///     }
    ///     p.qty -= n;
    ///     Ok(())
    /// })?;
    /// ```
    ///
    /// Because occ owns the read, it chooses how to read: each row's
    /// [`Temperature`](crate::Temperature) (its recent conflicts) decides.
    /// A cold row is read plainly and written versioned. A hot one's writers
    /// in this process queue for it in the process and go to the database
    /// one at a time, so that they stop failing each other; an attempt that
    /// still conflicts there (a writer of another process) runs again with
    /// the row read `FOR UPDATE`. On SQLite every attempt takes the
    /// database's write lock up front (`BEGIN IMMEDIATE`). A locked attempt
    /// is its own transaction; a plain one is the read and the versioned
    /// write alone, two statements, as written by hand. Like
    /// [`retry`](crate::retry) it refuses to run inside a transaction
    /// ([`OccError::RetryInsideTransaction`]).
    /// [`modify_with`](Self::modify_with) takes a strategy, a retry policy
    /// and a table of its own.
    ///
    /// A missing row is [`OccError::NotFound`]. A closure that returns only
    /// `Ok(())` must name its error type: `Ok::<_, OccError>(())`.
    fn modify<C, E, F>(conn: &mut C, key: Self::Key, change: F) -> Result<Self, E>
    where
        C: Reload<Self>,
        E: From<OccError> + AsOccError,
        F: FnMut(&mut Self) -> Result<(), E>,
    {
        Self::modify_with(conn, key, &ModifyPolicy::default(), change)
    }

    /// [`modify`](Self::modify) under `policy`: a fixed strategy or the
    /// adaptive one, the retry policy of its attempts, and the temperature
    /// table it reads and feeds.
    fn modify_with<C, E, F>(
        conn: &mut C,
        key: Self::Key,
        policy: &ModifyPolicy,
        change: F,
    ) -> Result<Self, E>
    where
        C: Reload<Self>,
        E: From<OccError> + AsOccError,
        F: FnMut(&mut Self) -> Result<(), E>,
    {
        conn.occ_modify(key, None, policy, change)
    }

    /// [`modify`](Self::modify), starting from `row`: a copy of the row the
    /// caller already read, on another connection, such as a replica's.
    /// The first attempt applies `change` to it and writes it versioned
    /// through `conn` without reading; if the copy was stale, that write is
    /// a conflict, and every attempt after it reads the row on `conn`, as
    /// `modify` does. So a service that reads from replicas and writes to
    /// the primary passes the primary as `conn`: a replica's lag costs a
    /// conflict and a read from the primary, never a lost update, and the
    /// row it retries from is never the replica's.
    ///
    /// ```text
    /// let product: Product = products::table.find(id).first(&mut replica)?;
    /// // ... show it, decide ...
    /// let product = Product::modify_from(&mut primary, product, |p| {
    ///     p.qty -= 1;
    ///     Ok::<_, OccError>(())
    /// })?;
    /// ```
    fn modify_from<C, E, F>(conn: &mut C, row: Self, change: F) -> Result<Self, E>
    where
        C: Reload<Self>,
        E: From<OccError> + AsOccError,
        F: FnMut(&mut Self) -> Result<(), E>,
    {
        Self::modify_from_with(conn, row, &ModifyPolicy::default(), change)
    }

    /// [`modify_from`](Self::modify_from) under `policy`.
    fn modify_from_with<C, E, F>(
        conn: &mut C,
        row: Self,
        policy: &ModifyPolicy,
        change: F,
    ) -> Result<Self, E>
    where
        C: Reload<Self>,
        E: From<OccError> + AsOccError,
        F: FnMut(&mut Self) -> Result<(), E>,
    {
        conn.occ_modify(row.key(), Some(row), policy, change)
    }

    /// Applies `changes` to the row with `key` where `guard` holds, and moves
    /// its version forward, in one statement that reads nothing first:
    /// `UPDATE .. SET changes, version = .. WHERE key AND (guard)`. For a
    /// change that commutes with its concurrent peers and depends on a
    /// condition, such as a stock decrement:
    ///
    /// ```text
    /// Product::update_where(conn, id, qty.ge(n), qty.eq(qty - n))?;
    /// ```
    ///
    /// No version is needed and none is checked: the database checks the
    /// guard on the row as it is when the update runs. Concurrent guarded
    /// updates of one row queue on its row lock (PostgreSQL, InnoDB) or the
    /// database lock (SQLite), and each one's `WHERE` is checked against the
    /// row its predecessor left, so none is lost and the guard is never
    /// broken. The version still moves forward (`version + 1` for an
    /// integer, a fresh value otherwise), so a model read before it fails
    /// its next versioned write with [`OccError::Conflict`].
    ///
    /// When it writes nothing, one read of the row by key tells
    /// [`OccError::GuardFailed`] (the guard is false on the row as it is
    /// now) from [`OccError::NotFound`]; if the guard holds again by then
    /// (another writer changed the row in between), the update runs again.
    ///
    /// On PostgreSQL at `REPEATABLE READ` or `SERIALIZABLE` a row changed
    /// since the transaction's snapshot is [`OccError::SerializationFailure`]
    /// instead: run it in [`retry`](crate::retry), which tries again. At
    /// PostgreSQL's default `READ COMMITTED`, and at every level on MySQL,
    /// MariaDB and SQLite, it is never a conflict. The guide
    /// `occ::guide::strategy` compares it with the other ways of writing a
    /// hot row.
    fn update_where<C, G, S>(
        conn: &mut C,
        key: Self::Key,
        guard: G,
        changes: S,
    ) -> Result<(), OccError>
    where
        G: Expression<SqlType: BoolOrNullableBool> + AppearsOnTable<Self::Table>,
        S: AsChangeset<Target = Self::Table>,
        C: GuardedStore<Self, G, S::Changeset>,
    {
        conn.occ_update_where(key, guard, changes.as_changeset())
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
            RunLocked<C, Self, C::Kind, One<'c> = Result<Self, OccError>>,
    {
        Self::lock(key).exclusive().run_get_result(conn)
    }

    /// Reads the row with `key` and locks it `FOR SHARE` (`LOCK IN SHARE MODE`
    /// on MariaDB) until the transaction ends. Short for
    /// `Self::lock(key).shared().get_result(conn)`.
    fn find_shared<'c, C>(conn: &'c mut C, key: Self::Key) -> Result<Self, OccError>
    where
        C: RowLocking,
        Locked<ByKey<Self>, Shared>: RunLocked<C, Self, C::Kind, One<'c> = Result<Self, OccError>>,
    {
        Self::lock(key).shared().run_get_result(conn)
    }
}

impl<M: Optimistic> OptimisticDsl for M {}
