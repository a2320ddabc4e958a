//! The statements behind versioned writes, as diesel query fragments.
//!
//! Each is built from the pieces a derived model describes (table, key
//! predicate, version predicate and assignment, changeset), so one generic
//! statement serves every model and every backend, and diesel caches the
//! prepared statement per model type.

pub(crate) mod batch;

use diesel::backend::Backend;
use diesel::expression::Expression;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_source::Column;
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::{QueryResult, RunQueryDsl};

use crate::model::{Optimistic, VersionSqlType};
use crate::version::{NextUnread, Version};

/// The full versioned update of model `M` with changeset `S`.
pub type UpdateStatement<M, S> = VersionedUpdate<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    <M as Optimistic>::VersionPredicate,
    S,
    SetVersion<M>,
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
    CurrentRead,
>;

/// The read of a whole row of model `M` by key, selected as `M` on backend
/// `DB`, with lock clause `L` (`()` for none).
pub type FindStatement<M, DB, L = ()> = SelectByKey<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    diesel::helper_types::AsSelect<M, DB>,
    L,
>;

/// `UPDATE table SET changes, version = new WHERE key AND version = old`
#[derive(Debug, Clone, Copy)]
pub struct VersionedUpdate<T, K, V, S, A> {
    pub(crate) table: T,
    pub(crate) key: K,
    pub(crate) expected: V,
    pub(crate) changes: S,
    pub(crate) bump: A,
}

impl<T, K, V, S, A, DB> QueryFragment<DB> for VersionedUpdate<T, K, V, S, A>
where
    DB: Backend,
    T: QueryFragment<DB>,
    K: QueryFragment<DB>,
    V: QueryFragment<DB>,
    S: QueryFragment<DB>,
    A: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        // An empty changeset (bump_version, or a model whose every field is a key
        // or skipped) leaves only the version assignment; a version the
        // database sets leaves only the changes.
        let changes = !self.changes.is_noop(out.backend())?;
        if changes {
            self.changes.walk_ast(out.reborrow())?;
        }
        if !self.bump.is_noop(out.backend())? {
            if changes {
                out.push_sql(", ");
            }
            self.bump.walk_ast(out.reborrow())?;
        } else if !changes {
            // Nothing to write but the row must be touched: `version =
            // version`, which the database's trigger then replaces.
            self.bump.walk_ast(out.reborrow())?;
        }
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        self.expected.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<T, K, V, S, A, C> RunQueryDsl<C> for VersionedUpdate<T, K, V, S, A> {}

impl<M: Optimistic, S> UpdateStatement<M, S> {
    /// `UPDATE .. SET changes, version = next WHERE key AND version = expected`
    pub(crate) fn new(key: M::Key, expected: M::Version, changes: S, next: M::Version) -> Self {
        Self {
            table: M::Table::default(),
            key: M::key_predicate(key),
            expected: M::version_predicate(expected),
            changes,
            bump: SetVersion::new(next),
        }
    }
}

/// `version_column = next` in a `SET` clause: the column unqualified, as
/// every backend wants it there, and the value bound as the column's type.
pub struct SetVersion<M: Optimistic> {
    value: M::Version,
}

impl<M: Optimistic> SetVersion<M> {
    fn new(next: M::Version) -> Self {
        Self { value: next }
    }
}

impl<M, DB> QueryFragment<DB> for SetVersion<M>
where
    M: Optimistic,
    DB: Backend + HasSqlType<VersionSqlType<M>>,
    M::Version: ToSql<VersionSqlType<M>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_identifier(M::VersionColumn::NAME)?;
        out.push_sql(" = ");
        if M::VERSION_GENERATED {
            out.push_identifier(M::VersionColumn::NAME)
        } else {
            out.push_bind_param::<VersionSqlType<M>, M::Version>(&self.value)
        }
    }

    /// A version the database sets is not assigned by the write.
    fn is_noop(&self, _: &DB) -> QueryResult<bool> {
        Ok(M::VERSION_GENERATED)
    }
}

/// A versioned update that hands back the version the row holds after it
/// (`RETURNING version`): for a version the database sets, on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct ReturningVersion<U, M> {
    update: U,
    model: core::marker::PhantomData<fn() -> M>,
}

/// The versioned update of model `M` with changeset `S`, returning the
/// version stored.
pub type UpdateReturning<M, S> = ReturningVersion<UpdateStatement<M, S>, M>;

impl<M: Optimistic, S> UpdateReturning<M, S> {
    pub(crate) fn new(update: UpdateStatement<M, S>) -> Self {
        Self {
            update,
            model: core::marker::PhantomData,
        }
    }
}

impl<U, M: Optimistic> Query for ReturningVersion<U, M> {
    type SqlType = VersionSqlType<M>;
}

impl<U, M, DB> QueryFragment<DB> for ReturningVersion<U, M>
where
    DB: Backend,
    U: QueryFragment<DB>,
    M: Optimistic,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.update.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING ");
        out.push_identifier(M::VersionColumn::NAME)
    }
}

impl<U, M> QueryId for ReturningVersion<U, M> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<U, M, C> RunQueryDsl<C> for ReturningVersion<U, M> {}

impl<M: Optimistic> core::fmt::Debug for SetVersion<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SetVersion")
            .field("column", &M::VersionColumn::NAME)
            .field("value", &self.value)
            .finish()
    }
}

// Changesets have no static query id (as for diesel's own UPDATE): diesel then
// caches the prepared statement by its SQL text.
impl<T, K, V, S, A> QueryId for VersionedUpdate<T, K, V, S, A> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// The versioned update `U` of model `M` that also reads the row as it is
/// now, selected as `S`, when the update matched nothing; PostgreSQL only:
///
/// ```sql
/// WITH occ_written AS (UPDATE .. WHERE key AND version = old RETURNING 1)
/// SELECT selection, EXISTS (SELECT 1 FROM occ_written) FROM table WHERE key
/// ```
///
/// One row: written or not, and the row as the statement's snapshot has it;
/// none when there is no such row.
pub type UpdateOrCurrent<M, S, DB> = ReturningCurrent<
    UpdateStatement<M, S>,
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    diesel::helper_types::AsSelect<M, DB>,
>;

/// See [`UpdateOrCurrent`].
#[derive(Debug, Clone, Copy)]
pub struct ReturningCurrent<U, T, K, S> {
    update: U,
    table: T,
    key: K,
    selection: S,
}

impl<M, S, DB> UpdateOrCurrent<M, S, DB>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: Backend,
{
    pub(crate) fn new(key: M::Key, expected: M::Version, changes: S, next: M::Version) -> Self {
        ReturningCurrent {
            update: UpdateStatement::<M, S>::new(key.clone(), expected, changes, next),
            table: M::Table::default(),
            key: M::key_predicate(key),
            selection: diesel::SelectableHelper::as_select(),
        }
    }
}

impl<U, T, K, S: Expression> Query for ReturningCurrent<U, T, K, S> {
    type SqlType = (S::SqlType, diesel::sql_types::Bool);
}

impl<U, T, K, S, DB> QueryFragment<DB> for ReturningCurrent<U, T, K, S>
where
    DB: Backend,
    U: QueryFragment<DB>,
    T: QueryFragment<DB>,
    K: QueryFragment<DB>,
    S: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("WITH ");
        out.push_identifier("occ_written")?;
        out.push_sql(" AS (");
        self.update.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING 1) SELECT ");
        self.selection.walk_ast(out.reborrow())?;
        out.push_sql(", EXISTS (SELECT 1 FROM ");
        out.push_identifier("occ_written")?;
        out.push_sql(") FROM ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())
    }
}

// As for the update inside it: no static query id, cached by its SQL.
impl<U, T, K, S> QueryId for ReturningCurrent<U, T, K, S> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<U, T, K, S, C> RunQueryDsl<C> for ReturningCurrent<U, T, K, S> {}

/// The row of model `M` with `key` as it is now (the latest committed row,
/// also inside a MySQL snapshot), selected as `M` on `DB`.
pub type CurrentRow<M, DB> = FindStatement<M, DB, CurrentRead>;

/// `DELETE FROM table WHERE key AND version = old`
#[derive(Debug, Clone, Copy, QueryId)]
pub struct VersionedDelete<T, K, V> {
    pub(crate) table: T,
    pub(crate) key: K,
    pub(crate) expected: V,
}

impl<T, K, V, DB> QueryFragment<DB> for VersionedDelete<T, K, V>
where
    DB: Backend,
    T: QueryFragment<DB>,
    K: QueryFragment<DB>,
    V: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("DELETE FROM ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        self.expected.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<T, K, V, C> RunQueryDsl<C> for VersionedDelete<T, K, V> {}

/// `DELETE FROM .. WHERE key AND version = expected`
pub(crate) fn delete_statement<M: Optimistic>(
    key: M::Key,
    expected: M::Version,
) -> DeleteStatement<M> {
    VersionedDelete {
        table: M::Table::default(),
        key: M::key_predicate(key),
        expected: M::version_predicate(expected),
    }
}

/// `SELECT selection FROM table WHERE key`: the version probe on a failed write,
/// `reload`, and the locked finds.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct SelectByKey<T, K, S, L = ()> {
    pub(crate) table: T,
    pub(crate) key: K,
    pub(crate) selection: S,
    pub(crate) lock: L,
}

impl<T, K, S, L> Query for SelectByKey<T, K, S, L>
where
    S: Expression,
{
    type SqlType = S::SqlType;
}

impl<T, K, S, L, DB> QueryFragment<DB> for SelectByKey<T, K, S, L>
where
    DB: Backend,
    T: QueryFragment<DB>,
    K: QueryFragment<DB>,
    S: QueryFragment<DB>,
    L: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        self.selection.walk_ast(out.reborrow())?;
        out.push_sql(" FROM ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        self.lock.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<T, K, S, L, C> RunQueryDsl<C> for SelectByKey<T, K, S, L> {}

/// The row of model `M` with `key`, selected as `M` on `DB`, with lock clause
/// `lock`: `reload` (no lock) and a model's row locked by key.
pub(crate) fn find_statement<M, DB, L>(key: M::Key, lock: L) -> FindStatement<M, DB, L>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: Backend,
{
    SelectByKey::new(
        M::key_predicate(key),
        diesel::SelectableHelper::as_select(),
        lock,
    )
}

impl<T: Default, K, S, L> SelectByKey<T, K, S, L> {
    pub(crate) fn new(key: K, selection: S, lock: L) -> Self {
        Self {
            table: T::default(),
            key,
            selection,
            lock,
        }
    }
}

/// The lock clause of `modify`'s read of a row it will write: `FOR UPDATE`
/// on PostgreSQL and MySQL/MariaDB; nothing on SQLite, whose transaction
/// holds the write lock from its `BEGIN IMMEDIATE`. Each backend's module
/// renders it.
#[derive(Debug, Clone, Copy, Default, QueryId)]
pub struct ForModify;

/// Makes the version probe read the latest committed row instead of a
/// transaction's snapshot. What that takes differs per backend; each
/// backend's module (`backend/pg.rs`, `backend/mysql.rs`, `backend/sqlite.rs`)
/// renders it.
#[derive(Debug, Clone, Copy, Default, QueryId)]
pub struct CurrentRead;

/// The guarded update of model `M` with guard `G` and changeset `S`, which
/// reads nothing first:
///
/// ```sql
/// UPDATE table SET changes, version = <next> WHERE key AND (guard)
/// ```
///
/// The next version is computed where the row is: `version + 1` (wrapping)
/// for an integer, a fresh value otherwise, written only where the row
/// holds another one (`AND version <> fresh`); a version the database sets
/// is left to it. See [`NextUnread`](crate::version::NextUnread).
pub struct GuardedUpdate<M: Optimistic, G, S> {
    table: M::Table,
    key: M::KeyPredicate,
    guard: G,
    changes: S,
    next: NextUnread<M::Version>,
}

impl<M: Optimistic, G, S> GuardedUpdate<M, G, S> {
    pub(crate) fn new(key: M::Key, guard: G, changes: S) -> Self {
        Self {
            table: M::Table::default(),
            key: M::key_predicate(key),
            guard,
            changes,
            next: M::Version::unread_next(),
        }
    }
}

impl<M, G, S, DB> QueryFragment<DB> for GuardedUpdate<M, G, S>
where
    M: Optimistic<Table: QueryFragment<DB>, KeyPredicate: QueryFragment<DB>>,
    DB: Backend + HasSqlType<VersionSqlType<M>>,
    M::Version: ToSql<VersionSqlType<M>, DB>,
    G: QueryFragment<DB>,
    S: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let version = M::VersionColumn::NAME;
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        if !self.changes.is_noop(out.backend())? {
            self.changes.walk_ast(out.reborrow())?;
            out.push_sql(", ");
        }
        out.push_identifier(version)?;
        out.push_sql(" = ");
        match &self.next {
            // The database's trigger replaces it.
            _ if M::VERSION_GENERATED => out.push_identifier(version)?,
            NextUnread::Increment { max, min } => {
                out.push_sql("CASE WHEN ");
                out.push_identifier(version)?;
                out.push_sql(" < ");
                out.push_bind_param::<VersionSqlType<M>, M::Version>(max)?;
                out.push_sql(" THEN ");
                out.push_identifier(version)?;
                out.push_sql(" + 1 ELSE ");
                out.push_bind_param::<VersionSqlType<M>, M::Version>(min)?;
                out.push_sql(" END");
            }
            NextUnread::Fresh(fresh) => {
                out.push_bind_param::<VersionSqlType<M>, M::Version>(fresh)?
            }
        }
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND (");
        self.guard.walk_ast(out.reborrow())?;
        out.push_sql(")");
        if let (false, NextUnread::Fresh(fresh)) = (M::VERSION_GENERATED, &self.next) {
            // A version read by someone must change: two writes within one
            // clock tick would otherwise store the same timestamp.
            out.push_sql(" AND ");
            out.push_identifier(version)?;
            out.push_sql(" <> ");
            out.push_bind_param::<VersionSqlType<M>, M::Version>(fresh)?;
        }
        Ok(())
    }
}

// As for the versioned update: cached by its SQL.
impl<M: Optimistic, G, S> QueryId for GuardedUpdate<M, G, S> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<M: Optimistic, G, S, C> RunQueryDsl<C> for GuardedUpdate<M, G, S> {}

/// The read, after a guarded update matched nothing, of whether the row
/// exists and its guard holds now: `1`, `0`, or no row.
pub type GuardProbe<M, G> = SelectByKey<
    <M as Optimistic>::Table,
    <M as Optimistic>::KeyPredicate,
    GuardHolds<G>,
    CurrentRead,
>;

/// `CASE WHEN (guard) THEN 1 ELSE 0 END`: a guard that is `NULL` does not
/// hold, as in the update's `WHERE`.
#[derive(Debug, Clone, Copy, QueryId)]
pub struct GuardHolds<G>(G);

impl<G> Expression for GuardHolds<G> {
    type SqlType = diesel::sql_types::Integer;
}

impl<G: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for GuardHolds<G> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("CASE WHEN (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") THEN 1 ELSE 0 END");
        Ok(())
    }
}

/// The guard probe of the row with `key`.
pub(crate) fn guard_probe<M: Optimistic, G>(key: M::Key, guard: G) -> GuardProbe<M, G> {
    SelectByKey::new(M::key_predicate(key), GuardHolds(guard), CurrentRead)
}
