//! What `#[derive(Optimistic)]` says about a model. The behaviour lives in
//! [`OptimisticDsl`](crate::OptimisticDsl); this is only the description.

use core::fmt::Debug;

use diesel::query_builder::QueryId;
use diesel::query_source::{Column, Table};

use crate::version::Version;

/// A description of a versioned diesel model: its table, key, version column and
/// the columns a versioned update writes.
///
/// Implemented by `#[derive(Optimistic)]`, never by hand, and not brought in by
/// the prelude: its methods are plumbing, and would otherwise show up on every
/// model. Bound generic code with [`OptimisticDsl`](crate::OptimisticDsl).
pub trait Optimistic: Sized {
    /// The diesel table (`products::table`).
    type Table: Table + QueryId + Default + Copy;
    /// The key, owned: the key field's type, or a tuple for a composite key.
    type Key: Clone + Debug;
    /// The version field's type.
    type Version: Version;
    /// The version column (`products::version`).
    type VersionColumn: Column<Table = Self::Table> + Default;
    /// `key_column = key` (joined by `AND` for a composite key).
    type KeyPredicate;
    /// `version_column = version`, for a `WHERE` clause.
    type VersionPredicate;
    /// The assignments of a full versioned update: every field that is neither
    /// key, version, nor marked `skip_update`.
    type Changeset;
    /// The key's values as bind parameters, a tuple in the order of
    /// [`KEY_COLUMNS`](Self::KEY_COLUMNS): one row of a batch statement.
    type KeyValues;
    /// The writable fields' values as bind parameters, a tuple in the order
    /// of [`WRITABLE_COLUMNS`](Self::WRITABLE_COLUMNS) (`()` when none).
    type WritableValues;

    /// The table's name, for errors.
    const TABLE_NAME: &'static str;
    /// Whether the database sets the version (`#[occ(version, generated)]`):
    /// writes check it but do not set it, and read back what the database
    /// stored.
    const VERSION_GENERATED: bool;
    /// The key columns' names.
    const KEY_COLUMNS: &'static [&'static str];
    /// The names of the columns a full versioned update writes.
    const WRITABLE_COLUMNS: &'static [&'static str];

    /// This row's key.
    fn key(&self) -> Self::Key;
    /// This row's version as last read or written.
    fn version(&self) -> &Self::Version;
    /// Stores a new version in the model after a successful write.
    fn set_version(&mut self, version: Self::Version);
    /// The `WHERE` predicate selecting the row with `key`.
    fn key_predicate(key: Self::Key) -> Self::KeyPredicate;
    /// The `WHERE` predicate checking the version.
    fn version_predicate(version: Self::Version) -> Self::VersionPredicate;
    /// The assignments of every writable field of this row.
    fn changeset(&self) -> Self::Changeset;
    /// This row's key values, for a batch statement.
    fn key_values(&self) -> Self::KeyValues;
    /// This row's writable values, for a batch statement.
    fn writable_values(&self) -> Self::WritableValues;
    /// `key_column = value` pairs for messages.
    fn describe_key(key: &Self::Key) -> String;
}

/// Which fields of two models of the same type differ: for a merge screen
/// after a conflict ([`update_versioned_or_current`](crate::OptimisticDsl::update_versioned_or_current)),
/// or a log line. `#[derive(Optimistic)]` implements it for every model
/// whose fields are all `PartialEq`.
pub trait ChangedFields {
    /// The names of the fields in which `self` and `other` differ, in the
    /// order the struct declares them.
    fn changed_fields(&self, other: &Self) -> Vec<&'static str>;
}

/// Formats key columns and values for messages: `id = 7`, `order_id = 1, line = 2`.
/// Called by generated code.
pub fn describe_key(parts: &[(&str, &dyn Debug)]) -> String {
    let mut out = String::new();
    for (i, (column, value)) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(column);
        out.push_str(" = ");
        out.push_str(&format!("{value:?}"));
    }
    out
}

/// The SQL type of model `M`'s version column, as diesel's `table!` declares it.
pub(crate) type VersionSqlType<M> =
    <<M as Optimistic>::VersionColumn as diesel::Expression>::SqlType;
