#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

pub use occ_derive::Optimistic;
pub use occ_runtime::{
    lock, retry, retry_counted, Isolation, LockDsl, Locked, OccConnection, OccError, OptimisticDsl,
    Retried, RetryPolicy, RowLocking, Version,
};

/// `use occ::prelude::*;` brings diesel's prelude, the derive, the traits whose
/// methods occ adds ([`OptimisticDsl`], [`LockDsl`]), [`RetryPolicy`],
/// [`Isolation`] and [`OccError`].
pub mod prelude {
    pub use diesel::prelude::*;
    pub use occ_derive::Optimistic;

    pub use crate::{Isolation, LockDsl, OccError, OptimisticDsl, RetryPolicy};
}

#[doc(hidden)]
pub mod __private {
    pub use occ_runtime::__private::*;
}
