#![warn(missing_docs)]
//! The runtime of [occ](https://docs.rs/occ): versioned writes, error
//! classification, row locks and retry for diesel. Use it through the `occ`
//! crate, which re-exports what users name, with the derive.
//!
//! Layers, each importing only from those above it: `error`, `version`;
//! `model` (the description a derive gives) and `backend` (what each
//! connection needs); `query` (the statements); `write` (versioned writes and
//! their outcome) and `lock` (clause, builder, run); `dsl` (what a model can
//! do) and `retry`.

mod backend;
mod dsl;
mod error;
pub mod lock;
mod model;
mod query;
mod retry;
mod trace;
mod version;
mod write;

pub use crate::backend::{Isolation, OccConnection, RowLocking};
pub use crate::dsl::OptimisticDsl;
pub use crate::error::OccError;
pub use crate::lock::builder::{LockDsl, Locked};
pub use crate::retry::{retry, retry_counted, Retried, RetryPolicy};
pub use crate::version::Version;

/// Not public API: what the derive's generated code names.
#[doc(hidden)]
pub mod __private {
    pub use diesel;

    pub use crate::model::{describe_key, Optimistic};
    pub use crate::version::Version;
}
