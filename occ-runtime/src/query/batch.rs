//! The statements of a batch on PostgreSQL: one `UPDATE .. FROM (VALUES ..)
//! .. RETURNING` or `DELETE .. USING (VALUES ..) .. RETURNING` per chunk of
//! rows, and the read of the versions of the rows they did not write.
//! `crate::batch` runs them.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_source::Column;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Integer, Nullable};
use diesel::{QueryResult, RunQueryDsl};

use crate::model::{Optimistic, VersionSqlType};

/// One chunk of a batch update on PostgreSQL:
///
/// ```sql
/// UPDATE t SET a = occ_v.a, .., version = occ_v.occ_next
/// FROM (VALUES ($1, key.., a.., $expected, $next), ..)
///     AS occ_v (occ_index, key.., a.., occ_expected, occ_next)
/// WHERE t.key = occ_v.key AND t.version = occ_v.occ_expected
/// RETURNING occ_v.occ_index
/// ```
pub struct BatchUpdate<M: Optimistic> {
    table: M::Table,
    rows: Vec<ValuesRow<M::KeyValues, UpdateValues<M>>>,
}

/// What a row of a batch update carries after its key: the writable values,
/// the version expected and the next one.
type UpdateValues<M> = (
    <M as Optimistic>::WritableValues,
    VersionBind<M>,
    VersionBind<M>,
);

/// One row of a batch statement's `VALUES`: `($index, key.., rest..)`.
struct ValuesRow<K, R> {
    index: i32,
    key: K,
    rest: R,
}

impl<K, R, DB> QueryFragment<DB> for ValuesRow<K, R>
where
    DB: Backend,
    K: QueryFragment<DB>,
    R: QueryFragment<DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("(");
        out.push_bind_param::<Integer, i32>(&self.index)?;
        out.push_sql(", ");
        self.key.walk_ast(out.reborrow())?;
        if !self.rest.is_noop(out.backend())? {
            out.push_sql(", ");
            self.rest.walk_ast(out.reborrow())?;
        }
        out.push_sql(")");
        Ok(())
    }
}

/// A version as a bind parameter of its column's type.
struct VersionBind<M: Optimistic>(M::Version);

impl<M, DB> QueryFragment<DB> for VersionBind<M>
where
    M: Optimistic,
    DB: Backend + HasSqlType<VersionSqlType<M>>,
    M::Version: ToSql<VersionSqlType<M>, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_bind_param::<VersionSqlType<M>, M::Version>(&self.0)
    }
}

/// `(VALUES row, ..)`
fn values<'b, DB, T>(out: &mut AstPass<'_, 'b, DB>, rows: &'b [T]) -> QueryResult<()>
where
    DB: Backend,
    T: QueryFragment<DB>,
{
    out.push_sql("(VALUES ");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        row.walk_ast(out.reborrow())?;
    }
    out.push_sql(")");
    Ok(())
}

impl<M: Optimistic> BatchUpdate<M> {
    pub(crate) fn new(models: &[M], nexts: &[M::Version], start: usize) -> Self {
        let rows = models
            .iter()
            .zip(nexts)
            .enumerate()
            .map(|(i, (model, next))| ValuesRow {
                index: index(start + i),
                key: model.key_values(),
                rest: (
                    model.writable_values(),
                    VersionBind(model.version().clone()),
                    VersionBind(next.clone()),
                ),
            })
            .collect();
        Self {
            table: M::Table::default(),
            rows,
        }
    }
}

/// A row's position in the batch, as the `Integer` the statement carries.
fn index(i: usize) -> i32 {
    i32::try_from(i).expect("a batch of fewer than 2^31 rows")
}

const ALIAS: &str = "occ_v";
const INDEX: &str = "occ_index";
const EXPECTED: &str = "occ_expected";
const NEXT: &str = "occ_next";

/// `occ_v.name`
fn from_values<DB: Backend>(out: &mut AstPass<'_, '_, DB>, name: &str) -> QueryResult<()> {
    out.push_identifier(ALIAS)?;
    out.push_sql(".");
    out.push_identifier(name)
}

/// `table.name`
fn from_table<'b, T, DB>(out: &mut AstPass<'_, 'b, DB>, table: &'b T, name: &str) -> QueryResult<()>
where
    T: QueryFragment<DB>,
    DB: Backend,
{
    table.walk_ast(out.reborrow())?;
    out.push_sql(".");
    out.push_identifier(name)
}

/// `AS occ_v (occ_index, key.., rest..)`
fn alias<DB: Backend>(
    out: &mut AstPass<'_, '_, DB>,
    key: &[&str],
    rest: &[&str],
) -> QueryResult<()> {
    out.push_sql(" AS ");
    out.push_identifier(ALIAS)?;
    out.push_sql(" (");
    out.push_identifier(INDEX)?;
    for name in key.iter().chain(rest) {
        out.push_sql(", ");
        out.push_identifier(name)?;
    }
    out.push_sql(")");
    Ok(())
}

/// ` WHERE t.key = occ_v.key AND t.version = occ_v.occ_expected RETURNING
/// occ_v.occ_index`: the rows of a batch write that still had their
/// version, named by their place in the batch.
fn matched_and_returned<'b, M, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    table: &'b M::Table,
) -> QueryResult<()>
where
    M: Optimistic,
    DB: Backend,
    M::Table: QueryFragment<DB>,
{
    out.push_sql(" WHERE ");
    join_on_key::<M, DB>(out, table)?;
    out.push_sql(" AND ");
    from_table(out, table, M::VersionColumn::NAME)?;
    out.push_sql(" = ");
    from_values(out, EXPECTED)?;
    out.push_sql(" RETURNING ");
    from_values(out, INDEX)
}

/// `t.key = occ_v.key AND ..`
fn join_on_key<'b, M, DB>(out: &mut AstPass<'_, 'b, DB>, table: &'b M::Table) -> QueryResult<()>
where
    M: Optimistic,
    DB: Backend,
    M::Table: QueryFragment<DB>,
{
    for (i, name) in M::KEY_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push_sql(" AND ");
        }
        from_table(out, table, name)?;
        out.push_sql(" = ");
        from_values(out, name)?;
    }
    Ok(())
}

impl<M, DB> QueryFragment<DB> for BatchUpdate<M>
where
    M: Optimistic,
    DB: Backend + HasSqlType<VersionSqlType<M>>,
    M::Table: QueryFragment<DB>,
    M::KeyValues: QueryFragment<DB>,
    M::WritableValues: QueryFragment<DB>,
    M::Version: ToSql<VersionSqlType<M>, DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let version = M::VersionColumn::NAME;
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        for name in M::WRITABLE_COLUMNS {
            out.push_identifier(name)?;
            out.push_sql(" = ");
            from_values(&mut out, name)?;
            out.push_sql(", ");
        }
        out.push_identifier(version)?;
        out.push_sql(" = ");
        from_values(&mut out, NEXT)?;
        out.push_sql(" FROM ");
        values(&mut out, &self.rows)?;
        let mut rest = M::WRITABLE_COLUMNS.to_vec();
        rest.extend([EXPECTED, NEXT]);
        alias(&mut out, M::KEY_COLUMNS, &rest)?;
        matched_and_returned::<M, DB>(&mut out, &self.table)
    }
}

/// One chunk of a batch delete on PostgreSQL:
///
/// ```sql
/// DELETE FROM t USING (VALUES ($1, key.., $expected), ..)
///     AS occ_v (occ_index, key.., occ_expected)
/// WHERE t.key = occ_v.key AND t.version = occ_v.occ_expected
/// RETURNING occ_v.occ_index
/// ```
pub struct BatchDelete<M: Optimistic> {
    table: M::Table,
    rows: Vec<ValuesRow<M::KeyValues, VersionBind<M>>>,
}

impl<M: Optimistic> BatchDelete<M> {
    pub(crate) fn new(models: &[M], start: usize) -> Self {
        let rows = models
            .iter()
            .enumerate()
            .map(|(i, model)| ValuesRow {
                index: index(start + i),
                key: model.key_values(),
                rest: VersionBind(model.version().clone()),
            })
            .collect();
        Self {
            table: M::Table::default(),
            rows,
        }
    }
}

impl<M, DB> QueryFragment<DB> for BatchDelete<M>
where
    M: Optimistic,
    DB: Backend + HasSqlType<VersionSqlType<M>>,
    M::Table: QueryFragment<DB>,
    M::KeyValues: QueryFragment<DB>,
    M::Version: ToSql<VersionSqlType<M>, DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("DELETE FROM ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" USING ");
        values(&mut out, &self.rows)?;
        alias(&mut out, M::KEY_COLUMNS, &[EXPECTED])?;
        matched_and_returned::<M, DB>(&mut out, &self.table)
    }
}

/// The versions the rows of a batch that were not written hold now (none
/// for a row that is gone), in one statement:
///
/// ```sql
/// SELECT occ_v.occ_index, t.version FROM (VALUES ($1, key..), ..)
///     AS occ_v (occ_index, key..) LEFT JOIN t ON t.key = occ_v.key
/// ```
pub struct BatchProbe<M: Optimistic> {
    table: M::Table,
    rows: Vec<ValuesRow<M::KeyValues, ()>>,
}

impl<M: Optimistic> BatchProbe<M> {
    pub(crate) fn new<'m>(rows: impl Iterator<Item = (&'m M, usize)>) -> Self
    where
        M: 'm,
    {
        let rows = rows
            .map(|(model, i)| ValuesRow {
                index: index(i),
                key: model.key_values(),
                rest: (),
            })
            .collect();
        Self {
            table: M::Table::default(),
            rows,
        }
    }
}

impl<M, DB> QueryFragment<DB> for BatchProbe<M>
where
    M: Optimistic,
    DB: Backend,
    M::Table: QueryFragment<DB>,
    M::KeyValues: QueryFragment<DB>,
    i32: ToSql<Integer, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT ");
        from_values(&mut out, INDEX)?;
        out.push_sql(", ");
        from_table(&mut out, &self.table, M::VersionColumn::NAME)?;
        out.push_sql(" FROM ");
        values(&mut out, &self.rows)?;
        alias(&mut out, M::KEY_COLUMNS, &[])?;
        out.push_sql(" LEFT JOIN ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" ON ");
        join_on_key::<M, DB>(&mut out, &self.table)
    }
}

// The SQL of a batch statement depends on its number of rows only: diesel
// caches each prepared statement by its SQL text.
macro_rules! batch_query {
    ($($statement:ident => $sql_type:ty),*) => {$(
        impl<M: Optimistic> QueryId for $statement<M> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<M: Optimistic> Query for $statement<M> {
            type SqlType = $sql_type;
        }

        impl<M: Optimistic, C> RunQueryDsl<C> for $statement<M> {}
    )*};
}

batch_query! {
    BatchUpdate => Integer,
    BatchDelete => Integer,
    BatchProbe => (Integer, Nullable<VersionSqlType<M>>)
}
