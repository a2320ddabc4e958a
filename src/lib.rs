#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

pub use occ_derive::Optimistic;
pub use occ_runtime::{
    describe_key, DeleteStatement, FindStatement, OccError, Optimistic, OptimisticDsl,
    UpdateStatement, Version, VersionProbe,
};

/// The statements behind occ's operations, as diesel query fragments.
pub mod query {
    pub use occ_runtime::{CurrentRead, SelectByKey, VersionedDelete, VersionedUpdate};
}

/// `use occ::prelude::*;` brings diesel's prelude, the derive, the traits whose
/// methods occ adds, and [`OccError`].
pub mod prelude {
    pub use diesel::prelude::*;

    pub use crate::{OccError, Optimistic, OptimisticDsl};
}

#[doc(hidden)]
pub mod __private {
    pub use occ_runtime::__private::diesel;
    pub use occ_runtime::{describe_key, Optimistic, Version};
}
