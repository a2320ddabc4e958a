use diesel::{Connection, SqliteConnection};

use super::sealed::Transactions;
use super::{Isolation, OccConnection};
use crate::error::OccError;

impl OccConnection for SqliteConnection {}

impl Transactions for SqliteConnection {
    // Every SQLite transaction is serializable: any requested level is met.
    fn transaction_at<T>(
        &mut self,
        _isolation: Option<Isolation>,
        body: &mut dyn FnMut(&mut Self) -> Result<T, OccError>,
    ) -> Result<T, OccError> {
        self.transaction(|conn| body(conn))
    }
}
