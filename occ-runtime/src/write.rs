//! Versioned writes and their outcome: one path from a statement's row count
//! to success, [`OccError::Conflict`], [`OccError::NotFound`] or
//! [`OccError::KeyNotUnique`], for every kind of connection.

use diesel::result::Error as DieselError;

use crate::backend::sealed::Hooks;
use crate::error::OccError;
use crate::exec::{depth, Exec, Execute, Load};
use crate::model::Optimistic;
use crate::query::{
    find_statement, guard_probe, CurrentRead, CurrentRow, FindStatement, GuardProbe, GuardedUpdate,
    SelectByKey, UpdateOrCurrent, UpdateReturning, UpdateStatement, VersionProbe,
};
use crate::trace::{self, Operation};
use crate::transaction::transaction_at;

/// What a versioned write's row count says.
enum Written {
    /// The row had the expected version and was written.
    Done,
    /// Nothing matched: a read of the current version tells why.
    Probe,
}

/// Whether a write sent on `conn` now commits on its own: no transaction is
/// open.
fn commits_alone<K, C: Exec<K>>(conn: &mut C) -> bool {
    matches!(depth(conn), Ok(0))
}

/// The error of a write that failed on its way. Outside a transaction the
/// write commits by itself, so a connection that broke under it leaves that
/// commit's outcome unknown, as one that broke in a COMMIT does (a failover
/// that killed the primary mid-statement). Only a client that says it never
/// sent the statement (MySQL's 2006, libpq's "no connection") knows better.
fn in_flight(alone: bool, error: DieselError) -> OccError {
    match OccError::from(error) {
        OccError::ConnectionBroken(e) if alone && !never_sent(&e) => {
            OccError::CommitOutcomeUnknown(e)
        }
        other => other,
    }
}

fn never_sent(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info)
        if info.message().contains("server has gone away")
            || info.message().starts_with("no connection to the server"))
}

/// Sends a write; its row count, or [`in_flight`]'s reading of its error.
async fn send<K, C, W>(conn: &mut C, statement: W) -> Result<usize, OccError>
where
    C: Exec<K>,
    W: Execute<C, K>,
{
    let alone = commits_alone(conn);
    statement
        .send(conn)
        .await
        .map_err(|error| in_flight(alone, error))
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

/// What a versioned write did to its row.
pub(crate) enum Outcome<V> {
    /// The row had the expected version and was written.
    Done,
    /// The row has another version, this one.
    Conflict(V),
    /// There is no such row.
    Missing,
}

impl<V> Outcome<V> {
    /// `value` (what the row holds now) if the write was done, else why not.
    pub(crate) fn or_written<W>(self, value: W) -> Result<W, Self> {
        match self {
            Self::Done => Ok(value),
            failed => Err(failed),
        }
    }
}

/// The error of a write that failed: a conflict with the version found, or
/// a missing row.
pub(crate) fn failure<M: Optimistic>(
    outcome: Outcome<M::Version>,
    key: &M::Key,
    expected: &M::Version,
) -> OccError {
    match outcome {
        Outcome::Conflict(actual) => OccError::Conflict {
            table: M::TABLE_NAME,
            key: M::describe_key(key),
            expected: expected.to_string(),
            actual: actual.to_string(),
        },
        Outcome::Missing | Outcome::Done => not_found::<M>(key),
    }
}

/// The error a single versioned write returns, traced.
fn failed_write<M: Optimistic>(
    outcome: Outcome<M::Version>,
    key: &M::Key,
    expected: &M::Version,
) -> OccError {
    let error = failure::<M>(outcome, key, expected);
    trace::failed(&error);
    error
}

/// The error for the row with `key` that is not there.
pub(crate) fn not_found<M: Optimistic>(key: &M::Key) -> OccError {
    OccError::NotFound {
        table: M::TABLE_NAME,
        key: M::describe_key(key),
    }
}

/// Runs a versioned write (`operation`: `UPDATE` or `DELETE`) of the row
/// with `key` expected at `expected`. Only a write that matched nothing
/// pays for the extra read that tells a conflict from a missing row.
pub(crate) async fn execute<M, K, C, W>(
    conn: &mut C,
    operation: &'static str,
    statement: W,
    key: M::Key,
    expected: &M::Version,
) -> Result<(), OccError>
where
    C: Exec<K>,
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    W: Execute<C, K>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Operation::write::<C::Db>(operation, M::TABLE_NAME)
        .run(async {
            outcome::<M, K, C, W>(conn, statement, key.clone())
                .await?
                .or_written(())
                .map_err(|failed| failed_write::<M>(failed, &key, expected))
        })
        .await
}

/// Runs a versioned write of the row with `key`; what it did, with the
/// version found when it matched nothing.
pub(crate) async fn outcome<M, K, C, W>(
    conn: &mut C,
    statement: W,
    key: M::Key,
) -> Result<Outcome<M::Version>, OccError>
where
    C: Exec<K>,
    M: Optimistic,
    W: Execute<C, K>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Ok(match written::<M>(send(conn, statement).await?, &key)? {
        Written::Done => Outcome::Done,
        Written::Probe => current_version::<M, K, C>(conn, key).await?,
    })
}

/// The versioned update of the row with `key` from `expected` to `next`,
/// writing `changes`: the one path behind `update_versioned`, `bump_version`
/// and `update_if_version`. Returns the version the row holds now: `next`,
/// or what the database stored for a version it sets.
pub(crate) async fn update<M, K, C, S>(
    conn: &mut C,
    key: M::Key,
    expected: &M::Version,
    changes: S,
    next: M::Version,
) -> Result<M::Version, OccError>
where
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    UpdateStatement<M, S>: Execute<C, K>,
    UpdateReturning<M, S>: Load<C, K, M::Version>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Operation::write::<C::Db>("UPDATE", M::TABLE_NAME)
        .run(async {
            update_outcome::<M, K, C, S>(conn, key.clone(), expected, changes, next)
                .await?
                .map_err(|failed| failed_write::<M>(failed, &key, expected))
        })
        .await
}

/// What a versioned update did: the version the row holds after it, or why
/// it wrote nothing.
pub(crate) async fn update_outcome<M, K, C, S>(
    conn: &mut C,
    key: M::Key,
    expected: &M::Version,
    changes: S,
    next: M::Version,
) -> Result<Result<M::Version, Outcome<M::Version>>, OccError>
where
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    UpdateStatement<M, S>: Execute<C, K>,
    UpdateReturning<M, S>: Load<C, K, M::Version>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    let statement =
        UpdateStatement::<M, S>::new(key.clone(), expected.clone(), changes, next.clone());
    if !M::VERSION_GENERATED {
        return Ok(outcome::<M, K, C, _>(conn, statement, key)
            .await?
            .or_written(next));
    }
    // The database sets the version: PostgreSQL hands it back from the
    // write itself.
    if <C::Db as Hooks>::WRITES_RETURN_ROWS {
        let alone = commits_alone(conn);
        let mut stored = UpdateReturning::<M, S>::new(statement)
            .load_all(conn)
            .await
            .map_err(|error| in_flight(alone, error))?;
        return match stored.len() {
            1 => Ok(Ok(stored.pop().expect("one row"))),
            0 => Ok(Err(current_version::<M, K, C>(conn, key).await?)),
            rows => Err(OccError::KeyNotUnique {
                table: M::TABLE_NAME,
                key: M::describe_key(&key),
                rows,
            }),
        };
    }
    // Elsewhere the write, then a read of what it stored, in one
    // transaction: the row stays locked (MySQL) or the database stays
    // written (SQLite) between the two, so the version read is this write's.
    // The statement is handed to the one attempt through a lock, which
    // keeps the attempt's future free of borrows from the body.
    let statement = std::sync::Mutex::new(Some(statement));
    let mut body = async |conn: &mut C| {
        let statement = statement
            .lock()
            .map_err(|_| unrepeatable())?
            .take()
            .ok_or_else(unrepeatable)?;
        Ok(
            match outcome::<M, K, C, _>(conn, statement, key.clone()).await? {
                Outcome::Done => match probe::<M>(key.clone()).load_first(conn).await? {
                    Some(stored) => Ok(stored),
                    None => Err(Outcome::Missing),
                },
                failed => Err(failed),
            },
        )
    };
    if depth::<K, C>(conn)? == 0 {
        transaction_at(conn, None, &mut body).await
    } else {
        body(conn).await
    }
}

/// A write's statement was asked for twice; the transaction runs its body once.
fn unrepeatable() -> OccError {
    OccError::Internal("a versioned write ran twice in one transaction: a bug in occ".into())
}

/// Why a write that matched nothing failed: the version found, or no row.
async fn current_version<M, K, C>(
    conn: &mut C,
    key: M::Key,
) -> Result<Outcome<M::Version>, OccError>
where
    M: Optimistic,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Ok(match probe::<M>(key).load_first(conn).await? {
        Some(actual) => Outcome::Conflict(actual),
        None => Outcome::Missing,
    })
}

/// The versioned update of the row with `key` from `expected` to `next`;
/// when the row has another version, the row as it is now instead of an
/// error. On PostgreSQL one statement either way; elsewhere the update, and
/// on a conflict one read of the row.
pub(crate) async fn update_or_current<M, K, C, DB, S>(
    conn: &mut C,
    key: M::Key,
    expected: &M::Version,
    changes: S,
    next: M::Version,
) -> Result<Result<M::Version, M>, OccError>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: diesel::backend::Backend,
    C: Exec<K, Db: Hooks>,
    UpdateOrCurrent<M, S, DB>: Load<C, K, (M, bool)>,
    UpdateStatement<M, S>: Execute<C, K>,
    UpdateReturning<M, S>: Load<C, K, M::Version>,
    VersionProbe<M>: Load<C, K, M::Version>,
    CurrentRow<M, DB>: Load<C, K, M>,
{
    Operation::write::<C::Db>("UPDATE", M::TABLE_NAME)
        .run_counting(
            async {
                if M::VERSION_GENERATED {
                    // The version the database stores must be read back: the update's
                    // own path, then the row on a conflict.
                    match update_outcome::<M, K, C, S>(conn, key.clone(), expected, changes, next)
                        .await?
                    {
                        Ok(stored) => return Ok(Ok(stored)),
                        Err(Outcome::Missing) => return Err(not_found::<M>(&key)),
                        Err(_) => {}
                    }
                } else if <C::Db as Hooks>::WRITES_RETURN_ROWS {
                    let statement = UpdateOrCurrent::<M, S, DB>::new(
                        key.clone(),
                        expected.clone(),
                        changes,
                        next.clone(),
                    );
                    let alone = commits_alone(conn);
                    let written = statement
                        .load_first(conn)
                        .await
                        .map_err(|error| in_flight(alone, error))?;
                    match written {
                        Some((_, true)) => return Ok(Ok(next)),
                        Some((current, false)) if current.version() != expected => {
                            return Ok(Err(current))
                        }
                        None => return Err(not_found::<M>(&key)),
                        // The statement's snapshot is older than the row its update
                        // waited for and found changed: read the row as it is now.
                        Some(_) => {}
                    }
                } else {
                    let statement = UpdateStatement::<M, S>::new(
                        key.clone(),
                        expected.clone(),
                        changes,
                        next.clone(),
                    );
                    if let Written::Done = written::<M>(send(conn, statement).await?, &key)? {
                        return Ok(Ok(next));
                    }
                }
                let current = find_statement::<M, DB, _>(key.clone(), CurrentRead)
                    .load_first(conn)
                    .await?;
                match current {
                    Some(current) => Ok(Err(current)),
                    None => Err(not_found::<M>(&key)),
                }
            },
            |written| usize::from(written.is_err()),
        )
        .await
}

/// The whole row with `key`, read again; [`OccError::NotFound`] if it is gone.
pub(crate) async fn reload<M, K, C, DB>(conn: &mut C, key: M::Key) -> Result<M, OccError>
where
    M: Optimistic + diesel::Selectable<DB>,
    DB: diesel::backend::Backend,
    C: Exec<K, Db: Hooks>,
    FindStatement<M, DB>: Load<C, K, M>,
{
    Operation::write::<C::Db>("SELECT", M::TABLE_NAME)
        .run(async {
            find_statement::<M, DB, _>(key.clone(), ())
                .load_first(conn)
                .await?
                .ok_or_else(|| not_found::<M>(&key))
        })
        .await
}

/// How many times a guarded update writes again after its guard held on
/// the read that followed a write that matched nothing: each such round
/// means another writer changed the row in between.
const GUARDED_ROUNDS: u32 = 64;

/// The guarded update of the row with `key`: `changes` and the next version,
/// where `guard` holds, in one statement that reads nothing first. When it
/// matches nothing, a read of the row by key says why: no row
/// ([`OccError::NotFound`]), or the guard false on the row as it is now
/// ([`OccError::GuardFailed`]); a guard that holds again (the row changed
/// between the two) is written again.
pub(crate) async fn update_where<M, K, C, G, S>(
    conn: &mut C,
    key: M::Key,
    guard: G,
    changes: S,
) -> Result<(), OccError>
where
    C: Exec<K>,
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    G: Clone,
    S: Clone,
    GuardedUpdate<M, G, S>: Execute<C, K>,
    GuardProbe<M, G>: Load<C, K, i32>,
{
    Operation::write::<C::Db>("UPDATE", M::TABLE_NAME)
        .run(async {
            for _ in 0..GUARDED_ROUNDS {
                let statement = GuardedUpdate::<M, G, S>::new(key.clone(), guard.clone(), changes.clone());
                if let Written::Done = written::<M>(send(conn, statement).await?, &key)? {
                    return Ok(());
                }
                let error = match guard_probe::<M, G>(key.clone(), guard.clone())
                    .load_first(conn)
                    .await?
                {
                    None => not_found::<M>(&key),
                    Some(0) => OccError::GuardFailed {
                        table: M::TABLE_NAME,
                        key: M::describe_key(&key),
                    },
                    // The guard holds on the row as it is now: another writer
                    // changed it after the update looked, or (a timestamp version)
                    // wrote the very version this one meant to write.
                    Some(_) => continue,
                };
                return Err(error);
            }
            Err(OccError::Internal(format!(
                "the guarded update on {} ({}) matched no row {GUARDED_ROUNDS} times while its guard \
                 held on every read of the row after it: does the guard call a volatile function?",
                M::TABLE_NAME,
                M::describe_key(&key)
            )))
        })
        .await
}
