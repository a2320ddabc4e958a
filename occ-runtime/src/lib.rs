#![warn(missing_docs)]
//! The runtime of [occ](https://docs.rs/occ): versioned writes, error
//! classification, row locks and retry for diesel. Use it through the `occ`
//! crate, which re-exports everything here with the derive.

mod connection;
mod error;
pub mod lock;
mod model;
mod query;
mod retry;
mod version;

pub use crate::connection::{transaction_depth, Dialect, Isolation, OccConnection, RowLocking};
pub use crate::error::OccError;
pub use crate::lock::{LockDsl, Locked};
pub use crate::model::{
    describe_key, DeleteStatement, FindStatement, Optimistic, OptimisticDsl, UpdateStatement,
    VersionProbe,
};
pub use crate::query::{CurrentRead, SelectByKey, VersionedDelete, VersionedUpdate};
pub use crate::retry::{retry, RetryPolicy};
pub use crate::version::Version;

/// Not public API: what the derive's generated code names.
#[doc(hidden)]
pub mod __private {
    pub use diesel;
}
