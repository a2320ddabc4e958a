#![warn(missing_docs)]
// The README links its guides on docs.rs; in the crate's own documentation
// the same link labels resolve to the modules here (the first definition of
// a label wins), so `cargo doc` links within the crate.
#![doc = "[models]: crate::guide::models"]
#![doc = "[versioned writes]: crate::guide::versioned_writes"]
#![doc = "[batches]: crate::guide::batches"]
#![doc = "[locks]: crate::guide::locks"]
#![doc = "[errors]: crate::guide::errors"]
#![doc = "[retry]: crate::guide::retry"]
#![doc = "[async]: crate::guide::asynchronous"]
#![doc = "[HTTP]: crate::guide::http"]
#![doc = "[strategy]: crate::guide::strategy"]
#![doc = "[replicas]: crate::guide::replicas"]
#![doc = "[observability]: crate::guide::observability"]
#![doc = "[backends]: crate::guide::backends"]
#![doc = include_str!("../README.md")]

pub mod guide;

pub use occ_derive::Optimistic;
#[cfg(feature = "http")]
pub use occ_runtime::http;
pub use occ_runtime::{
    lock, retry, retry_counted, AsOccError, BatchReport, ChangedFields, GuardedStore, HotRow,
    Isolation, LockDsl, Locked, ModifyPolicy, OccConnection, OccError, Optimistic, OptimisticDsl,
    Reload, Retried, RetryPolicy, RowLocking, Store, Strategy, Temperature, TemperatureStats,
    Version,
};
#[cfg(feature = "async")]
pub use occ_runtime::{
    retry_async, retry_counted_async, AsyncGuardedStore, AsyncOccConnection, AsyncOptimisticDsl,
    AsyncReload, AsyncStore, Attempt,
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
