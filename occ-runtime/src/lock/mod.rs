//! Row locks on any diesel select query: `.exclusive()`, `.shared()` and the
//! PostgreSQL-only strengths, with `NOWAIT`, `SKIP LOCKED`, a lock timeout and
//! `OF table`.
//!
//! The strength, the wait policy and `OF` are type parameters of
//! [`Locked`](crate::Locked),
//! so what a backend cannot do (a key-share lock on MySQL,
//! `.nowait().skip_locked()`, any row lock on SQLite) does not compile. The
//! types here are those parameters; a program names them only to store a
//! builder.

// The builder and its trait are re-exported at the crate root, their one
// public place.
pub(crate) mod builder;
pub(crate) mod clause;
mod run;

pub use self::builder::{LockSql, RunLocked};
pub use self::clause::{
    AllTables, Exclusive, KeyShared, LockTarget, NoKeyExclusive, NoWait, Of, Shared, SkipLocked,
    Strength, Wait, WaitAtMost, WaitPolicy, WaitUnchosen,
};
pub use self::run::ByKey;
