//! Versioned writes and their outcome: one path from a statement's row count
//! to success, [`OccError::Conflict`], [`OccError::NotFound`] or
//! [`OccError::KeyNotUnique`], for every kind of connection.

use crate::error::OccError;
use crate::exec::{Execute, Load};
use crate::model::Optimistic;
use crate::query::{
    find_statement, CurrentRead, FindStatement, SelectByKey, UpdateStatement, VersionProbe,
};
use crate::trace;

/// What a versioned write's row count says.
enum Written {
    /// The row had the expected version and was written.
    Done,
    /// Nothing matched: a read of the current version tells why.
    Probe,
}

/// Reads a versioned write's row count.
fn written<M: Optimistic>(rows: usize, key: &M::Key) -> Result<Written, OccError> {
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
fn probe<M: Optimistic>(key: M::Key) -> VersionProbe<M> {
    SelectByKey::new(M::key_predicate(key), Default::default(), CurrentRead)
}

/// Why a write that matched nothing failed, from what the probe found.
fn failure<M: Optimistic>(
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

fn not_found<M: Optimistic>(key: &M::Key) -> OccError {
    OccError::NotFound {
        table: M::TABLE_NAME,
        key: M::describe_key(key),
    }
}

/// Runs a versioned write (an update or a delete) of the row with `key`
/// expected at `expected`. Only a write that matched nothing pays for the
/// extra read that tells a conflict from a missing row.
pub(crate) async fn execute<M, K, C, W>(
    conn: &mut C,
    statement: W,
    key: M::Key,
    expected: &M::Version,
) -> Result<(), OccError>
where
    M: Optimistic,
    W: Execute<C, K>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    match written::<M>(statement.send(conn).await?, &key)? {
        Written::Done => Ok(()),
        Written::Probe => {
            let found = probe::<M>(key.clone()).load_first(conn).await?;
            let error = failure::<M>(found, &key, expected);
            trace::failed(&error);
            Err(error)
        }
    }
}

/// The versioned update of the row with `key` from `expected` to `next`,
/// writing `changes`: the one path behind `update_versioned`, `bump_version`
/// and `update_if_version`.
pub(crate) async fn update<M, K, C, S>(
    conn: &mut C,
    key: M::Key,
    expected: &M::Version,
    changes: S,
    next: M::Version,
) -> Result<(), OccError>
where
    M: Optimistic,
    UpdateStatement<M, S>: Execute<C, K>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    let statement = UpdateStatement::<M, S>::new(key.clone(), expected.clone(), changes, next);
    execute::<M, K, C, _>(conn, statement, key, expected).await
}

/// The whole row with `key`, read again; [`OccError::NotFound`] if it is gone.
pub(crate) async fn reload<M, K, C, DB>(conn: &mut C, key: M::Key) -> Result<M, OccError>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: diesel::backend::Backend,
    FindStatement<M, DB>: Load<C, K, M>,
{
    find_statement::<M, DB, _>(key.clone(), ())
        .load_first(conn)
        .await?
        .ok_or_else(|| not_found::<M>(&key))
}
