#![warn(missing_docs)]
//! The runtime of [occ](https://docs.rs/occ): versioned writes, error
//! classification, row locks and retry for diesel. Use it through the `occ`
//! crate, which re-exports what users name, with the derive.
//!
//! Layers, each importing only from those above it: `error`, `version`;
//! `model` (the description a derive gives); `exec` (how a statement is
//! sent: sync or async, the one seam between the two); `backend` (what each
//! backend and connection needs); `query` (the statements); `transaction`;
//! `write` (versioned writes and their outcome), `batch` (many rows at
//! once) and `lock` (clause, builder,
//! run); `temperature` (how hot each row is) and `modify` (the
//! read-modify-write occ runs; `flight`, beside `exec`, is the in-process
//! queue of a hot row); `store` (what a connection can do for a model, per
//! kind); `dsl` and `async_dsl` (what a model can do) and `retry`; `http`
//! (versions as HTTP validators, beside the rest). Everything
//! below `dsl` is written once, as async code generic over the kind of
//! connection; the sync API drives it to completion in one poll.

#[cfg(feature = "async")]
mod async_dsl;
extern crate alloc;

mod backend;
mod batch;
mod dsl;
mod error;
mod exec;
mod flight;
#[cfg(feature = "http")]
pub mod http;
pub mod lock;
#[cfg(feature = "metrics")]
mod metrics;
mod model;
mod modify;
mod query;
mod retry;
mod store;
mod temperature;
mod trace;
mod transaction;
mod version;
mod write;

#[cfg(feature = "async")]
pub use crate::async_dsl::AsyncOptimisticDsl;
#[cfg(feature = "async")]
pub use crate::backend::AsyncOccConnection;
pub use crate::backend::{Isolation, OccConnection, RowLocking};
pub use crate::batch::BatchReport;
pub use crate::dsl::OptimisticDsl;
pub use crate::error::{AsOccError, OccError};
pub use crate::lock::builder::{LockDsl, Locked};
pub use crate::model::{ChangedFields, Optimistic};
pub use crate::modify::{ModifyPolicy, Strategy};
pub use crate::retry::{retry, retry_counted, Retried, RetryPolicy};
#[cfg(feature = "async")]
pub use crate::retry::{retry_async, retry_counted_async};
#[cfg(feature = "async")]
pub use crate::store::{AsyncGuardedStore, AsyncReload, AsyncStore};
pub use crate::store::{GuardedStore, Reload, Store};
pub use crate::temperature::{HotRow, Temperature, TemperatureStats};
#[cfg(feature = "async")]
pub use crate::transaction::Attempt;
pub use crate::version::Version;

/// Not public API: what the derive's generated code names.
#[doc(hidden)]
pub mod __private {
    pub use diesel;

    pub use crate::model::{describe_key, ChangedFields, Optimistic};
    pub use crate::version::Version;
}
