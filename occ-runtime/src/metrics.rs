//! occ's OpenTelemetry instruments (feature `metrics`), on the meter `occ`
//! of the global meter provider: the database conventions' operation
//! duration, and counters of what concurrency control does. Created once,
//! on first use: a meter provider installed after occ's first operation is
//! not seen.

use std::sync::OnceLock;
use std::time::Instant;

use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::{InstrumentationScope, KeyValue};

use crate::error::OccError;
use crate::trace::Labels;

/// The convention's explicit bucket boundaries of
/// `db.client.operation.duration`, in seconds.
const BOUNDARIES: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

struct Instruments {
    duration: Histogram<f64>,
    conflicts: Counter<u64>,
    retries: Counter<u64>,
    gave_ups: Counter<u64>,
    lock_failures: Counter<u64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let scope = InstrumentationScope::builder("occ")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let meter = opentelemetry::global::meter_with_scope(scope);
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Instruments {
            duration: meter
                .f64_histogram("db.client.operation.duration")
                .with_unit("s")
                .with_description("Duration of database client operations.")
                .with_boundaries(BOUNDARIES.to_vec())
                .build(),
            conflicts: counter(
                "occ.conflicts",
                "{conflict}",
                "Rows a versioned write found at another version.",
            ),
            retries: counter(
                "occ.retries",
                "{retry}",
                "Attempts of retry or modify that failed and were run again.",
            ),
            gave_ups: counter(
                "occ.gave_ups",
                "{give_up}",
                "Retries and modifies that ended with an error another attempt could have got past.",
            ),
            lock_failures: counter(
                "occ.lock_failures",
                "{failure}",
                "Row locks not granted: NOWAIT found the row locked, or the wait timed out.",
            ),
        }
    })
}

/// The attributes every instrument has: the system and, where known, the
/// table.
fn common(labels: &Labels) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new("db.system.name", labels.system));
    if let Some(table) = labels.table {
        attributes.push(KeyValue::new("db.collection.name", table));
    }
    attributes
}

/// A counter's attributes for `error`: the common ones with the error's
/// kind, and its table where the operation did not know one.
fn of_error(labels: &Labels, error: &OccError) -> Vec<KeyValue> {
    let mut attributes = common(labels);
    if labels.table.is_none() {
        if let Some(table) = table_of(error) {
            attributes.push(KeyValue::new("db.collection.name", table));
        }
    }
    attributes.push(KeyValue::new("occ.error.kind", error.kind()));
    attributes
}

/// The table an error names, if it names one.
fn table_of(error: &OccError) -> Option<&'static str> {
    match error {
        OccError::Conflict { table, .. }
        | OccError::NotFound { table, .. }
        | OccError::KeyNotUnique { table, .. }
        | OccError::GuardFailed { table, .. }
        | OccError::DuplicateInBatch { table, .. } => Some(table),
        _ => None,
    }
}

/// When a database operation started, and which.
pub(crate) struct Timer {
    operation: &'static str,
    started: Instant,
}

impl Timer {
    pub(crate) fn start(operation: &'static str) -> Self {
        Self {
            operation,
            started: Instant::now(),
        }
    }

    /// The operation ended, failed with `error` (occ's error if it is one,
    /// and its `error.type`) if that is there.
    pub(crate) fn stop(&self, labels: &Labels, error: Option<(Option<&OccError>, &'static str)>) {
        let seconds = self.started.elapsed().as_secs_f64();
        let instruments = instruments();
        let mut attributes = common(labels);
        attributes.push(KeyValue::new("db.operation.name", self.operation));
        if let Some((_, error_type)) = error {
            attributes.push(KeyValue::new("error.type", error_type));
        }
        instruments.duration.record(seconds, &attributes);
        match error {
            Some((Some(error), _)) if error.is_conflict() => conflicts(labels, 1),
            Some((Some(error), _)) if error.is_lock_failure() => {
                instruments.lock_failures.add(1, &of_error(labels, error))
            }
            _ => {}
        }
    }
}

pub(crate) fn conflicts(labels: &Labels, rows: usize) {
    if rows > 0 {
        instruments().conflicts.add(rows as u64, &common(labels));
    }
}

pub(crate) fn retried(labels: &Labels, error: &OccError) {
    instruments().retries.add(1, &of_error(labels, error));
}

pub(crate) fn gave_up(labels: &Labels, error: &OccError) {
    instruments().gave_ups.add(1, &of_error(labels, error));
}
