//! The statements behind versioned writes, as diesel query fragments.
//!
//! Each is built from the pieces a derived model describes (table, key
//! predicate, version predicate and assignment, changeset), so one generic
//! statement serves every model and every backend, and diesel caches the
//! prepared statement per model type.

use diesel::backend::Backend;
use diesel::expression::Expression;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

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
        // or skipped) leaves only the version assignment.
        if !self.changes.is_noop(out.backend())? {
            self.changes.walk_ast(out.reborrow())?;
            out.push_sql(", ");
        }
        self.bump.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.key.walk_ast(out.reborrow())?;
        out.push_sql(" AND ");
        self.expected.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<T, K, V, S, A, C> RunQueryDsl<C> for VersionedUpdate<T, K, V, S, A> {}

// Changesets have no static query id (as for diesel's own UPDATE): diesel then
// caches the prepared statement by its SQL text.
impl<T, K, V, S, A> QueryId for VersionedUpdate<T, K, V, S, A> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

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

/// Makes the version probe read the latest committed row instead of a
/// transaction's snapshot. InnoDB's plain `SELECT` inside a `REPEATABLE READ`
/// transaction returns the snapshot, which would report the version the failed
/// write expected (or a row already deleted); `LOCK IN SHARE MODE` (accepted by
/// MySQL and MariaDB) reads the current row. PostgreSQL (a fresh snapshot per
/// statement under `READ COMMITTED`, a serialization error under stricter
/// levels) and SQLite (one writer) need nothing.
#[derive(Debug, Clone, Copy, Default, QueryId)]
pub struct CurrentRead;

#[cfg(feature = "postgres")]
impl QueryFragment<diesel::pg::Pg> for CurrentRead {
    fn walk_ast<'b>(&'b self, _: AstPass<'_, 'b, diesel::pg::Pg>) -> QueryResult<()> {
        Ok(())
    }
}

#[cfg(feature = "sqlite")]
impl QueryFragment<diesel::sqlite::Sqlite> for CurrentRead {
    fn walk_ast<'b>(&'b self, _: AstPass<'_, 'b, diesel::sqlite::Sqlite>) -> QueryResult<()> {
        Ok(())
    }
}

#[cfg(feature = "mysql")]
impl QueryFragment<diesel::mysql::Mysql> for CurrentRead {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, diesel::mysql::Mysql>) -> QueryResult<()> {
        out.push_sql(" LOCK IN SHARE MODE");
        Ok(())
    }
}
