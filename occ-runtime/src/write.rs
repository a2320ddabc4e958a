//! Versioned writes and their outcome: one path from a statement's row count
//! to success, [`OccError::Conflict`], [`OccError::NotFound`] or
//! [`OccError::KeyNotUnique`].

use diesel::connection::LoadConnection;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::query_dsl::methods::LoadQuery;
use diesel::{Connection, OptionalExtension, RunQueryDsl};

use crate::error::OccError;
use crate::model::Optimistic;
use crate::query::{CurrentRead, SelectByKey, UpdateStatement, VersionProbe};
use crate::trace;

/// What a versioned write's row count says.
pub(crate) enum Written {
    /// The row had the expected version and was written.
    Done,
    /// Nothing matched: a read of the current version tells why.
    Probe,
}

/// Reads a versioned write's row count.
pub(crate) fn written<M: Optimistic>(rows: usize, key: &M::Key) -> Result<Written, OccError> {
    match rows {
        1 => Ok(Written::Done),
        0 => Ok(Written::Probe),
        rows => Err(OccError::KeyNotUnique {
            table: M::TABLE_NAME,
            key: M::describe_key(key),
            rows,
        }),
    }
}

/// The read of the version the row holds now.
pub(crate) fn probe<M: Optimistic>(key: M::Key) -> VersionProbe<M> {
    SelectByKey::new(M::key_predicate(key), Default::default(), CurrentRead)
}

/// Why a write that matched nothing failed, from what the probe found.
pub(crate) fn failure<M: Optimistic>(
    found: Option<M::Version>,
    key: &M::Key,
    expected: &M::Version,
) -> OccError {
    match found {
        Some(actual) => OccError::Conflict {
            table: M::TABLE_NAME,
            key: M::describe_key(key),
            expected: expected.to_string(),
            actual: actual.to_string(),
        },
        None => not_found::<M>(key),
    }
}

pub(crate) fn not_found<M: Optimistic>(key: &M::Key) -> OccError {
    OccError::NotFound {
        table: M::TABLE_NAME,
        key: M::describe_key(key),
    }
}

/// Runs a versioned write (an update or a delete) of the row with `key`
/// expected at `expected`. Only a write that matched nothing pays for the
/// extra read that tells a conflict from a missing row.
pub(crate) fn execute<M, C, W>(
    conn: &mut C,
    statement: W,
    key: M::Key,
    expected: &M::Version,
) -> Result<(), OccError>
where
    M: Optimistic,
    C: Connection + LoadConnection,
    W: RunQueryDsl<C> + QueryFragment<C::Backend> + QueryId,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
{
    match written::<M>(statement.execute(conn)?, &key)? {
        Written::Done => Ok(()),
        Written::Probe => {
            let found = probe::<M>(key.clone()).get_result(conn).optional()?;
            let error = failure::<M>(found, &key, expected);
            trace::failed(&error);
            Err(error)
        }
    }
}

/// The versioned update of the row with `key` from `expected` to `next`,
/// writing `changes`: the one path behind `update_versioned`, `bump_version`
/// and `update_if_version`.
pub(crate) fn update<M, C, S>(
    conn: &mut C,
    key: M::Key,
    expected: &M::Version,
    changes: S,
    next: M::Version,
) -> Result<(), OccError>
where
    M: Optimistic,
    C: Connection + LoadConnection,
    UpdateStatement<M, S>: QueryFragment<C::Backend> + QueryId,
    VersionProbe<M>: LoadQuery<'static, C, M::Version>,
{
    let statement = UpdateStatement::<M, S>::new(key.clone(), expected.clone(), changes, next);
    execute::<M, C, _>(conn, statement, key, expected)
}
