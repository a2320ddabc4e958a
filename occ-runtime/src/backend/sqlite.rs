use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;

use super::sealed::Hooks;
use super::{IsolationAt, OccConnection};
use crate::exec::AfterFailure;

impl Hooks for Sqlite {
    const ISOLATION: IsolationAt = IsolationAt::Always;
}

impl OccConnection for SqliteConnection {}
impl AfterFailure for SqliteConnection {}
