#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

pub use occ_derive::Optimistic;
#[cfg(feature = "http")]
pub use occ_runtime::http;
pub use occ_runtime::{
    lock, retry, retry_counted, AsOccError, BatchReport, ChangedFields, Isolation, LockDsl, Locked,
    OccConnection, OccError, Optimistic, OptimisticDsl, Reload, Retried, RetryPolicy, RowLocking,
    Store, Version,
};
#[cfg(feature = "async")]
pub use occ_runtime::{
    retry_async, retry_counted_async, AsyncOccConnection, AsyncOptimisticDsl, AsyncReload,
    AsyncStore,
};

/// `use occ::prelude::*;` brings diesel's prelude, the derive, the traits whose
/// methods occ adds ([`OptimisticDsl`], [`LockDsl`], [`ChangedFields`]), [`RetryPolicy`],
/// [`Isolation`] and [`OccError`].
pub mod prelude {
    pub use diesel::prelude::*;
    pub use occ_derive::Optimistic;

    pub use crate::{ChangedFields, Isolation, LockDsl, OccError, OptimisticDsl, RetryPolicy};
}

/// `use occ::async_prelude::*;` (instead of `occ::prelude::*`) brings
/// diesel's prelude, the derive, [`RetryPolicy`], [`Isolation`],
/// [`OccError`], [`ChangedFields`], the async methods with the sync names
/// ([`AsyncOptimisticDsl`]; [`LockDsl`] and the terminals of [`Locked`],
/// which return a future on a diesel-async connection), and diesel-async's
/// `AsyncConnection` and `RunQueryDsl` (in place of diesel's sync
/// `RunQueryDsl`) for diesel's own queries.
#[cfg(feature = "async")]
pub mod async_prelude {
    #[doc(no_inline)]
    pub use diesel::prelude::*;
    #[doc(no_inline)]
    pub use diesel_async::{AsyncConnection, RunQueryDsl};
    pub use occ_derive::Optimistic;

    pub use crate::{AsyncOptimisticDsl, ChangedFields, Isolation, LockDsl, OccError, RetryPolicy};
}

#[doc(hidden)]
pub mod __private {
    pub use occ_runtime::__private::*;
}
