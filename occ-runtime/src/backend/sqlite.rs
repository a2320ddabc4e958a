use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use super::sealed::Hooks;
use super::{IsolationAt, OccConnection};
use crate::exec::AfterFailure;

impl Hooks for Sqlite {
    const ISOLATION: IsolationAt = IsolationAt::Always;
    const BEGIN_TO_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    // SQLite's result codes are not SQLSTATEs, and diesel keeps them: an
    // error is told by occ's kind (`busy`).
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    fn system_name() -> &'static str {
        "sqlite"
    }
}

impl OccConnection for SqliteConnection {}
impl AfterFailure for SqliteConnection {}

/// `modify`'s read on SQLite is a plain one: its transaction began with
/// `BEGIN IMMEDIATE`, which holds the database's write lock.
impl diesel::query_builder::QueryFragment<Sqlite> for crate::query::ForModify {
    fn walk_ast<'b>(
        &'b self,
        _: diesel::query_builder::AstPass<'_, 'b, Sqlite>,
    ) -> diesel::QueryResult<()> {
        Ok(())
    }
}

/// A version probe on SQLite reads the row plainly: one writer at a time.
impl diesel::query_builder::QueryFragment<Sqlite> for crate::query::CurrentRead {
    fn walk_ast<'b>(
        &'b self,
        _: diesel::query_builder::AstPass<'_, 'b, Sqlite>,
    ) -> diesel::QueryResult<()> {
        Ok(())
    }
}
