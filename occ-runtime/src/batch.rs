//! Versioned writes of many rows at once, with an outcome per row.
//!
//! On PostgreSQL a batch is one statement per chunk: the rows travel as a
//! `VALUES` list joined to the table on key and expected version, and
//! `RETURNING` names the rows written; one more statement reads the version
//! of the rows that were not, to tell a conflict from a missing row. MySQL,
//! MariaDB and SQLite have no `RETURNING` on a joined `UPDATE`, so a batch
//! there is one versioned write per row. Either way the batch runs in one
//! transaction (a savepoint inside the caller's).
//!
//! This module holds the report and the orchestration; the statements are in
//! `crate::query::batch`, beside the single-row ones.

use core::fmt;
use std::collections::HashSet;

use crate::backend::sealed::Hooks;
use crate::error::OccError;
use crate::exec::{depth, Exec, Execute, Load};
use crate::model::Optimistic;
pub(crate) use crate::query::batch::{BatchDelete, BatchProbe, BatchUpdate};
use crate::query::{
    delete_statement, DeleteStatement, UpdateReturning, UpdateStatement, VersionProbe,
};
use crate::trace::Operation;
use crate::transaction;
use crate::version::Version;
use crate::write::{self, Outcome};

/// What a batch of versioned writes did, row by row: which rows were
/// written, which had another version (and which), and which were gone.
///
/// After [`update_versioned_all`](crate::OptimisticDsl::update_versioned_all)
/// the models written hold their new versions; the others are unchanged.
pub struct BatchReport<M: Optimistic> {
    written: Vec<M::Key>,
    conflicts: Vec<(M::Key, M::Version)>,
    missing: Vec<M::Key>,
}

impl<M: Optimistic> BatchReport<M> {
    /// The keys of the rows written, in the order of the batch.
    pub fn written(&self) -> &[M::Key] {
        &self.written
    }

    /// The keys of the rows found at another version than the model's, each
    /// with the version found: somebody else wrote them since they were read.
    pub fn conflicts(&self) -> &[(M::Key, M::Version)] {
        &self.conflicts
    }

    /// The keys of the rows that no longer exist.
    pub fn missing(&self) -> &[M::Key] {
        &self.missing
    }

    /// True when every row of the batch was written.
    pub fn is_complete(&self) -> bool {
        self.conflicts.is_empty() && self.missing.is_empty()
    }
}

impl<M: Optimistic> fmt::Debug for BatchReport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchReport")
            .field("table", &M::TABLE_NAME)
            .field("written", &self.written)
            .field("conflicts", &self.conflicts)
            .field("missing", &self.missing)
            .finish()
    }
}

/// What became of one row of a batch: written (with what the model then
/// holds, `W`), or why not.
pub(crate) enum RowOutcome<W, V> {
    Written(W),
    Conflict(V),
    Missing,
}

/// Whether a batch that did not write every row is kept or undone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Partial {
    /// The rows written stay written; the report says what failed.
    Commit,
    /// Any row that fails rolls the whole batch back, with that row's error.
    RollBack,
}

/// The report of a batch update, with the new versions stored in the
/// models written.
pub(crate) fn settle_update<M: Optimistic>(
    models: &mut [M],
    outcomes: Vec<RowOutcome<M::Version, M::Version>>,
) -> BatchReport<M> {
    settle(models.iter_mut(), outcomes, |model, next| {
        model.set_version(next)
    })
}

/// The report of a batch delete.
pub(crate) fn settle_delete<M: Optimistic>(
    models: &[M],
    outcomes: Vec<RowOutcome<(), M::Version>>,
) -> BatchReport<M> {
    settle(models.iter(), outcomes, |_, ()| {})
}

/// The report of a batch; `written` is given each model written, with what
/// it is to hold.
fn settle<M, R, W>(
    models: impl Iterator<Item = R>,
    outcomes: Vec<RowOutcome<W, M::Version>>,
    mut written: impl FnMut(R, W),
) -> BatchReport<M>
where
    M: Optimistic,
    R: core::ops::Deref<Target = M>,
{
    let mut report = BatchReport {
        written: Vec::new(),
        conflicts: Vec::new(),
        missing: Vec::new(),
    };
    for (model, outcome) in models.zip(outcomes) {
        match outcome {
            RowOutcome::Written(value) => {
                report.written.push(model.key());
                written(model, value);
            }
            RowOutcome::Conflict(found) => report.conflicts.push((model.key(), found)),
            RowOutcome::Missing => report.missing.push(model.key()),
        }
    }
    report
}

/// Refuses a batch that names a row twice: the second write of it could not
/// be told apart from a conflict.
fn distinct<M: Optimistic>(models: &[M]) -> Result<(), OccError> {
    let mut seen = HashSet::with_capacity(models.len());
    for model in models {
        let key = M::describe_key(&model.key());
        if !seen.insert(key.clone()) {
            return Err(OccError::DuplicateInBatch {
                table: M::TABLE_NAME,
                key,
            });
        }
    }
    Ok(())
}

/// One row's outcome from what its write did (`W`: what the model is to
/// hold); under [`Partial::RollBack`] a failure is the batch's error, as the
/// row's single write would have said it.
fn row_outcome<M: Optimistic, W>(
    model: &M,
    written: Result<W, Outcome<M::Version>>,
    partial: Partial,
) -> Result<RowOutcome<W, M::Version>, OccError> {
    Ok(match written {
        Ok(value) => RowOutcome::Written(value),
        Err(failed) if partial == Partial::RollBack => {
            return Err(write::failure::<M>(failed, &model.key(), model.version()));
        }
        Err(Outcome::Conflict(actual)) => RowOutcome::Conflict(actual),
        Err(_) => RowOutcome::Missing,
    })
}

/// How many rows of `binds_per_row` bind parameters fit in one PostgreSQL
/// statement (at most 65535 parameters).
fn chunk_rows(binds_per_row: usize) -> usize {
    (u16::MAX as usize / binds_per_row).max(1)
}

/// Runs `body` in a transaction: a new one at the top level, a savepoint in
/// the caller's.
async fn atomically<K, C, T, B>(conn: &mut C, body: &mut B) -> Result<T, OccError>
where
    C: Exec<K, Db: Hooks>,
    B: for<'c> transaction::Attempt<&'c mut C, Result<T, OccError>>,
{
    if depth::<K, C>(conn)? == 0 {
        transaction::transaction_at(conn, None, body).await
    } else {
        transaction::nested(conn, body).await
    }
}

/// How many rows of a batch were found at another version.
fn conflicted<W, V>(outcomes: &[RowOutcome<W, V>]) -> usize {
    outcomes
        .iter()
        .filter(|outcome| matches!(outcome, RowOutcome::Conflict(_)))
        .count()
}

/// Writes every model whose row still has the model's version: one path for
/// every backend and kind of connection. Returns each row's outcome, in the
/// order of `models`.
pub(crate) async fn update_all<M, K, C>(
    conn: &mut C,
    models: &[M],
    partial: Partial,
) -> Result<Vec<RowOutcome<M::Version, M::Version>>, OccError>
where
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    BatchUpdate<M>: Load<C, K, i32>,
    BatchProbe<M>: Load<C, K, (i32, Option<M::Version>)>,
    UpdateStatement<M, M::Changeset>: Execute<C, K>,
    UpdateReturning<M, M::Changeset>: Load<C, K, M::Version>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Operation::batch::<C::Db>("UPDATE", M::TABLE_NAME, models.len())
        .run_counting(
            async {
                distinct(models)?;
                let nexts: Vec<M::Version> = models.iter().map(|m| m.version().next()).collect();
                let nexts = &nexts;
                let mut body = async |conn: &mut C| {
                    let mut outcomes = Vec::with_capacity(models.len());
                    // A version the database sets is read back row by row.
                    if M::VERSION_GENERATED || !<C::Db as Hooks>::WRITES_RETURN_ROWS {
                        for (model, next) in models.iter().zip(nexts) {
                            let written = write::update_outcome::<M, K, C, _>(
                                conn,
                                model.key(),
                                model.version(),
                                model.changeset(),
                                next.clone(),
                            )
                            .await?;
                            outcomes.push(row_outcome(model, written, partial)?);
                        }
                        return Ok(outcomes);
                    }
                    let rows = chunk_rows(3 + M::KEY_COLUMNS.len() + M::WRITABLE_COLUMNS.len());
                    for (n, chunk) in models.chunks(rows).enumerate() {
                        let (start, nexts) = (n * rows, &nexts[n * rows..]);
                        let written = BatchUpdate::<M>::new(chunk, nexts, start)
                            .load_all(conn)
                            .await?;
                        let found = probe_unwritten::<M, K, C>(conn, chunk, start, written).await?;
                        for ((model, next), found) in chunk.iter().zip(nexts).zip(found) {
                            outcomes.push(row_outcome(
                                model,
                                found.or_written(next.clone()),
                                partial,
                            )?);
                        }
                    }
                    Ok(outcomes)
                };
                atomically::<K, C, _, _>(conn, &mut body).await
            },
            |outcomes| conflicted(outcomes),
        )
        .await
}

/// Deletes every row that still has its model's version; each row's outcome,
/// in the order of `models`.
pub(crate) async fn delete_all<M, K, C>(
    conn: &mut C,
    models: &[M],
    partial: Partial,
) -> Result<Vec<RowOutcome<(), M::Version>>, OccError>
where
    M: Optimistic,
    C: Exec<K, Db: Hooks>,
    BatchDelete<M>: Load<C, K, i32>,
    BatchProbe<M>: Load<C, K, (i32, Option<M::Version>)>,
    DeleteStatement<M>: Execute<C, K>,
    VersionProbe<M>: Load<C, K, M::Version>,
{
    Operation::batch::<C::Db>("DELETE", M::TABLE_NAME, models.len())
        .run_counting(
            async {
                distinct(models)?;
                let mut body = async |conn: &mut C| {
                    let mut outcomes = Vec::with_capacity(models.len());
                    if <C::Db as Hooks>::WRITES_RETURN_ROWS {
                        let rows = chunk_rows(2 + M::KEY_COLUMNS.len());
                        for (n, chunk) in models.chunks(rows).enumerate() {
                            let start = n * rows;
                            let written =
                                BatchDelete::<M>::new(chunk, start).load_all(conn).await?;
                            let found =
                                probe_unwritten::<M, K, C>(conn, chunk, start, written).await?;
                            for (model, found) in chunk.iter().zip(found) {
                                outcomes.push(row_outcome(model, found.or_written(()), partial)?);
                            }
                        }
                    } else {
                        for model in models {
                            let statement =
                                delete_statement::<M>(model.key(), model.version().clone());
                            let found =
                                write::outcome::<M, K, C, _>(conn, statement, model.key()).await?;
                            outcomes.push(row_outcome(model, found.or_written(()), partial)?);
                        }
                    }
                    Ok(outcomes)
                };
                atomically::<K, C, _, _>(conn, &mut body).await
            },
            |outcomes| conflicted(outcomes),
        )
        .await
}

/// What one chunk's statement did to each of its rows: done if `RETURNING`
/// named it, else what the row holds now.
async fn probe_unwritten<M, K, C>(
    conn: &mut C,
    chunk: &[M],
    start: usize,
    written: Vec<i32>,
) -> Result<Vec<Outcome<M::Version>>, OccError>
where
    M: Optimistic,
    BatchProbe<M>: Load<C, K, (i32, Option<M::Version>)>,
{
    let mut found: Vec<Option<Outcome<M::Version>>> = (0..chunk.len()).map(|_| None).collect();
    for index in written {
        let row = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(start));
        match row.and_then(|row| found.get_mut(row)) {
            Some(slot @ None) => *slot = Some(Outcome::Done),
            Some(Some(_)) => return Err(unexpected::<M>(format!("returned row {index} twice"))),
            None => {
                return Err(unexpected::<M>(format!(
                    "returned row {index}, which it was not sent"
                )))
            }
        }
    }
    let unwritten: Vec<usize> = (0..chunk.len()).filter(|&i| found[i].is_none()).collect();
    if !unwritten.is_empty() {
        let probe = BatchProbe::<M>::new(unwritten.iter().map(|&i| (&chunk[i], start + i)));
        for (index, version) in probe.load_all(conn).await? {
            let row = usize::try_from(index)
                .ok()
                .and_then(|i| i.checked_sub(start));
            match row.and_then(|row| found.get_mut(row)) {
                Some(slot @ None) => {
                    *slot = Some(match version {
                        Some(actual) => Outcome::Conflict(actual),
                        None => Outcome::Missing,
                    })
                }
                Some(Some(_)) => {
                    return Err(unexpected::<M>(format!("returned row {index} twice")))
                }
                None => {
                    return Err(unexpected::<M>(format!(
                        "returned row {index}, which it was not sent"
                    )))
                }
            }
        }
    }
    found
        .into_iter()
        .enumerate()
        .map(|(row, outcome)| {
            outcome
                .ok_or_else(|| unexpected::<M>(format!("did not answer for row {}", start + row)))
        })
        .collect()
}

/// A batch statement answered with a row index it was not sent, or twice,
/// or not for every row: the key is not unique in the database.
fn unexpected<M: Optimistic>(what: String) -> OccError {
    OccError::Internal(format!(
        "a batch write on {} {what}: \
         is the key declared in #[diesel(primary_key(...))] unique?",
        M::TABLE_NAME
    ))
}
