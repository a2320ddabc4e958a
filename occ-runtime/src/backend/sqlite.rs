use diesel::SqliteConnection;

use super::sealed::Transactions;
use super::{IsolationAt, OccConnection};

impl OccConnection for SqliteConnection {}

impl Transactions for SqliteConnection {
    const ISOLATION: IsolationAt = IsolationAt::Always;
}
