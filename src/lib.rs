#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

pub use occ_derive::Optimistic;
pub use occ_runtime::{
    describe_key, retry, transaction_depth, DeleteStatement, Dialect, FindStatement, Isolation,
    LockDsl, Locked, OccConnection, OccError, Optimistic, OptimisticDsl, RetryPolicy, RowLocking,
    UpdateStatement, Version, VersionProbe,
};

/// Row-lock builders: strengths, wait policies and the lock clause.
pub mod lock {
    pub use occ_runtime::lock::*;
}

/// The statements behind occ's operations, as diesel query fragments.
pub mod query {
    pub use occ_runtime::{CurrentRead, SelectByKey, VersionedDelete, VersionedUpdate};
}

/// `use occ::prelude::*;` brings diesel's prelude, the derive, the traits whose
/// methods occ adds ([`OptimisticDsl`], [`LockDsl`]), [`RetryPolicy`],
/// [`Isolation`] and [`OccError`].
pub mod prelude {
    pub use diesel::prelude::*;

    pub use crate::{Isolation, LockDsl, OccError, Optimistic, OptimisticDsl, RetryPolicy};
}

#[doc(hidden)]
pub mod __private {
    pub use occ_runtime::__private::diesel;
    pub use occ_runtime::{describe_key, Optimistic, Version};
}
