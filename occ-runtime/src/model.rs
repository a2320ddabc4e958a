//! What `#[derive(Optimistic)]` says about a model, and the versioned writes
//! every such model gets.

use core::fmt::Debug;

use diesel::connection::LoadConnection;
use diesel::expression::SelectableHelper;
use diesel::query_builder::{AsChangeset, QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::query_source::{Column, Table};
use diesel::{Connection, OptionalExtension, RunQueryDsl, Selectable};

use crate::connection::RowLocking;
use crate::error::OccError;
use crate::lock::{AllTables, Exclusive, RowLock, Shared, Wait};
use crate::query::{SelectByKey, VersionedDelete, VersionedUpdate};
use crate::version::Version;

/// A description of a versioned diesel model: its table, key, version column and
/// the columns a versioned update writes.
///
/// Implemented by `#[derive(Optimistic)]`; the behaviour lives in
/// [`OptimisticDsl`], which every implementor gets. The associated types are
/// diesel expressions for the model's own table, so each statement is checked
/// against the schema at compile time.
pub trait Optimistic: Sized {
    /// The diesel table (`products::table`).
    type Table: Table + QueryId + Default + Copy;
    /// The key, owned: the key field's type, or a tuple for a composite key.
    type Key: Clone + Debug;
    /// The version field's type.
    type Version: Version;
    /// The version column (`products::version`).
    type VersionColumn: Column<Table = Self::Table> + Default;
    /// `key_column = key` (joined by `AND` for a composite key).
    type KeyPredicate;
    /// `version_column = version`, for a `WHERE` clause.
    type VersionPredicate;
    /// `version_column = version`, for a `SET` clause.
    type VersionAssignment;
    /// The assignments of a full versioned update: every field that is neither
    /// key, version, nor marked `skip_update`.
    type Changeset;

    /// The table's name, for errors.
    const TABLE_NAME: &'static str;

    /// This row's key.
    fn key(&self) -> Self::Key;
    /// This row's version as last read or written.
    fn version(&self) -> &Self::Version;
    /// Stores a new version in the model after a successful write.
    fn set_version(&mut self, version: Self::Version);
    /// The `WHERE` predicate selecting the row with `key`.
    fn key_predicate(key: Self::Key) -> Self::KeyPredicate;
    /// The `WHERE` predicate checking the version.
    fn version_predicate(version: Self::Version) -> Self::VersionPredicate;
    /// The `SET` assignment of a new version.
    fn version_assignment(version: Self::Version) -> Self::VersionAssignment;
    /// The assignments of every writable field of this row.
    fn changeset(&self) -> Self::Changeset;
    /// `key_column = value` pairs for messages.
    fn describe_key(key: &Self::Key) -> String;
}

/// The full versioned update of model `M` with changeset `S`.
pub type UpdateStatement<M, S> = VersionedUpdate<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    <M as Optimistic>::VersionPredicate,
    S,
    <M as Optimistic>::VersionAssignment,
>;

/// The versioned delete of model `M`.
pub type DeleteStatement<M> = VersionedDelete<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    <M as Optimistic>::VersionPredicate,
>;

/// The read of a row's current version after a versioned write matched nothing.
pub type VersionProbe<M> = SelectByKey<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    <M as Optimistic>::VersionColumn,
    crate::query::CurrentRead,
>;

/// The read of a whole row of model `M` by key, selected as `M` on backend `DB`.
pub type FindStatement<M, DB, L = ()> = SelectByKey<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    diesel::helper_types::AsSelect<M, DB>,
    L,
>;

/// Versioned writes on sync diesel connections; implemented for every
/// [`Optimistic`] model.
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
        let written = update_statement::<Self, _>(
            self.key(),
            self.version().clone(),
            self.changeset(),
            next.clone(),
        )
        .execute(conn);
        check_write::<Self, C>(conn, written, self.key(), self.version())?;
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
        let statement = VersionedDelete {
            table: Self::Table::default(),
            key: Self::key_predicate(self.key()),
            expected: Self::version_predicate(self.version().clone()),
        };
        let deleted = statement.execute(conn);
        check_write::<Self, C>(conn, deleted, self.key(), self.version())
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
        let written =
            update_statement::<Self, _>(self.key(), self.version().clone(), (), next.clone())
                .execute(conn);
        check_write::<Self, C>(conn, written, self.key(), self.version())?;
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
        let key = self.key();
        *self = find_optional::<Self, C, ()>(conn, key.clone(), ())?
            .ok_or_else(|| not_found::<Self>(&key))?;
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
        let written = update_statement::<Self, _>(
            key.clone(),
            expected.clone(),
            changes.as_changeset(),
            next.clone(),
        )
        .execute(conn);
        check_write::<Self, C>(conn, written, key, &expected)?;
        Ok(next)
    }

    /// Reads the row with `key` and locks it `FOR UPDATE` until the transaction
    /// ends; [`OccError::NotFound`] if there is none,
    /// [`OccError::NotInTransaction`] outside a transaction.
    fn find_exclusive<C>(conn: &mut C, key: Self::Key) -> Result<Self, OccError>
    where
        C: RowLocking,
        Self: Selectable<C::Backend>,
        FindStatement<Self, C::Backend, RowLock<Exclusive, Wait, AllTables>>:
            LoadQuery<'static, C, Self>,
    {
        crate::lock::find_locked::<Self, C, Exclusive>(conn, key)
    }

    /// Reads the row with `key` and locks it `FOR SHARE` (`LOCK IN SHARE MODE`
    /// on MariaDB) until the transaction ends.
    fn find_shared<C>(conn: &mut C, key: Self::Key) -> Result<Self, OccError>
    where
        C: RowLocking,
        Self: Selectable<C::Backend>,
        FindStatement<Self, C::Backend, RowLock<Shared, Wait, AllTables>>:
            LoadQuery<'static, C, Self>,
    {
        crate::lock::find_locked::<Self, C, Shared>(conn, key)
    }
}

impl<M: Optimistic> OptimisticDsl for M {}

fn update_statement<M: Optimistic, S>(
    key: M::Key,
    expected: M::Version,
    changes: S,
    next: M::Version,
) -> UpdateStatement<M, S> {
    VersionedUpdate {
        table: M::Table::default(),
        key: M::key_predicate(key),
        expected: M::version_predicate(expected),
        changes,
        bump: M::version_assignment(next),
    }
}

/// Turns a versioned write's row count into the outcome. Only a write that
/// matched nothing pays for the extra read that tells a conflict from a
/// missing row.
fn check_write<M, C>(
    conn: &mut C,
    written: diesel::QueryResult<usize>,
    key: M::Key,
    expected: &M::Version,
) -> Result<(), OccError>
where
    M: Optimistic,
    C: Connection + LoadConnection,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
{
    match written? {
        1 => Ok(()),
        0 => {
            let probe = SelectByKey {
                table: M::Table::default(),
                key: M::key_predicate(key.clone()),
                selection: M::VersionColumn::default(),
                lock: crate::query::CurrentRead,
            };
            match probe.get_result::<M::Version>(conn).optional()? {
                Some(actual) => Err(OccError::Conflict {
                    table: M::TABLE_NAME,
                    key: M::describe_key(&key),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                }),
                None => Err(not_found::<M>(&key)),
            }
        }
        rows => Err(OccError::KeyNotUnique {
            table: M::TABLE_NAME,
            key: M::describe_key(&key),
            rows,
        }),
    }
}

/// Loads the row of `M` with `key`, with lock clause `lock` (`()` for none):
/// `reload` and the locked finds.
pub(crate) fn find_optional<M, C, L>(
    conn: &mut C,
    key: M::Key,
    lock: L,
) -> diesel::QueryResult<Option<M>>
where
    M: Optimistic + Selectable<C::Backend>,
    C: Connection + LoadConnection,
    FindStatement<M, C::Backend, L>: LoadQuery<'static, C, M>,
{
    let statement = SelectByKey {
        table: M::Table::default(),
        key: M::key_predicate(key),
        selection: M::as_select(),
        lock,
    };
    statement.get_result::<M>(conn).optional()
}

pub(crate) fn not_found<M: Optimistic>(key: &M::Key) -> OccError {
    OccError::NotFound {
        table: M::TABLE_NAME,
        key: M::describe_key(key),
    }
}

/// Formats key columns and values for messages: `id = 7`, `order_id = 1, line = 2`.
pub fn describe_key(parts: &[(&str, &dyn Debug)]) -> String {
    let mut out = String::new();
    for (i, (column, value)) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(column);
        out.push_str(" = ");
        out.push_str(&format!("{value:?}"));
    }
    out
}
