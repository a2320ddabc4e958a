//! What occ tells about its work. With feature `tracing`: a span per
//! operation (a versioned write, a batch, a locked read, a whole `retry`,
//! `modify`) on target `occ` at `INFO`, named and attributed as
//! OpenTelemetry's database conventions say, and events for a version
//! conflict, a lock that was not granted, each retry and a retry that gave
//! up, and a row that `modify` starts or stops locking. With feature
//! `metrics`: the instruments of `crate::metrics`, fed from the same
//! places. Without either, all of it compiles to nothing.

#[cfg(feature = "tracing")]
use core::fmt;
use core::future::Future;
use core::time::Duration;

use crate::backend::sealed::Hooks;
use crate::error::{AsOccError, OccError};

/// `error.type` of an error that is the caller's own, not occ's: the
/// convention's value for a class it has no name for.
#[cfg(any(feature = "tracing", feature = "metrics"))]
const OTHER: &str = "_OTHER";

/// One logical operation: its span, and when it started, for its duration.
/// Created before the operation's first statement, finished with its
/// outcome.
pub(crate) struct Operation {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "metrics")]
    timer: Option<crate::metrics::Timer>,
    #[cfg(any(feature = "tracing", feature = "metrics"))]
    labels: Labels,
    /// The attempt running, recorded as `occ.attempt` when the operation
    /// ends: a field recorded at each attempt would be an attribute
    /// repeated, which exporters read differently.
    #[cfg(feature = "tracing")]
    attempts: core::sync::atomic::AtomicU32,
}

/// What an operation's metrics and its span's error attributes need.
#[cfg(any(feature = "tracing", feature = "metrics"))]
#[derive(Clone, Copy)]
pub(crate) struct Labels {
    pub(crate) system: &'static str,
    pub(crate) table: Option<&'static str>,
    status_code: fn(&OccError) -> Option<&'static str>,
}

#[cfg(any(feature = "tracing", feature = "metrics"))]
impl Labels {
    fn of<DB: Hooks>(table: Option<&'static str>) -> Self {
        Self {
            system: DB::system_name(),
            table,
            status_code: DB::status_code,
        }
    }

    /// `error.type`: the server's code where occ's class tells it, else
    /// occ's kind (`conflict`, `not_found`, ...).
    pub(crate) fn error_type(&self, error: Option<&OccError>) -> &'static str {
        match error {
            Some(error) => (self.status_code)(error).unwrap_or(error.kind()),
            None => OTHER,
        }
    }
}

/// `otel.name`: the convention's `{db.operation.name} {db.collection.name}`,
/// or the operation alone where the table is not known.
#[cfg(feature = "tracing")]
struct SpanName(&'static str, Option<&'static str>);

#[cfg(feature = "tracing")]
impl fmt::Display for SpanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(table) => write!(f, "{} {table}", self.0),
            None => f.write_str(self.0),
        }
    }
}

/// A span of occ's with the attributes every one of them has; `$extra` are
/// those of its kind of operation. Its name is the tracing name; exporters
/// take `otel.name`.
#[cfg(feature = "tracing")]
macro_rules! span {
    ($name:literal, $kind:literal, $labels:expr, $operation:expr, $($extra:tt)*) => {
        tracing::info_span!(
            target: "occ",
            $name,
            "otel.name" = %SpanName($operation, $labels.table),
            "otel.kind" = $kind,
            "otel.status_code" = tracing::field::Empty,
            "db.system.name" = $labels.system,
            "db.collection.name" = $labels.table,
            "error.type" = tracing::field::Empty,
            "db.response.status_code" = tracing::field::Empty,
            "occ.error.kind" = tracing::field::Empty,
            $($extra)*
        )
    };
}

impl Operation {
    /// A versioned write, a guarded update or a read by key: `operation`
    /// is `UPDATE`, `DELETE` or `SELECT`.
    pub(crate) fn write<DB: Hooks>(operation: &'static str, table: &'static str) -> Self {
        let _ = (operation, table);
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let labels = Labels::of::<DB>(Some(table));
        Self {
            #[cfg(feature = "tracing")]
            span: span!(
                "occ.write",
                "client",
                labels,
                operation,
                "db.operation.name" = operation
            ),
            #[cfg(feature = "metrics")]
            timer: Some(crate::metrics::Timer::start(operation)),
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            labels,
            #[cfg(feature = "tracing")]
            attempts: Default::default(),
        }
    }

    /// A batch of `rows` versioned writes (`UPDATE` or `DELETE`): a batch
    /// operation in the convention's terms (`BATCH UPDATE`, with its size)
    /// unless it holds one row.
    pub(crate) fn batch<DB: Hooks>(
        operation: &'static str,
        table: &'static str,
        rows: usize,
    ) -> Self {
        let (operation, size) = match (operation, rows) {
            (_, 1) => (operation, None),
            ("DELETE", _) => ("BATCH DELETE", Some(rows)),
            _ => ("BATCH UPDATE", Some(rows)),
        };
        let _ = (operation, table, size);
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let labels = Labels::of::<DB>(Some(table));
        Self {
            #[cfg(feature = "tracing")]
            span: span!(
                "occ.batch",
                "client",
                labels,
                operation,
                "db.operation.name" = operation,
                "db.operation.batch.size" = size,
            ),
            #[cfg(feature = "metrics")]
            timer: Some(crate::metrics::Timer::start(operation)),
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            labels,
            #[cfg(feature = "tracing")]
            attempts: Default::default(),
        }
    }

    /// A locked read: its strength and wait policy make `occ.lock.mode`
    /// (`for_update`, `for_share_nowait`, ...); `table` is the model's
    /// where a model's row is locked by key.
    pub(crate) fn lock<DB: Hooks>(
        table: Option<&'static str>,
        strength: &'static str,
        wait: &'static str,
        timeout: Option<Duration>,
    ) -> Self {
        let _ = (table, strength, wait, timeout);
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let labels = Labels::of::<DB>(table);
        Self {
            #[cfg(feature = "tracing")]
            span: span!(
                "occ.lock",
                "client",
                labels,
                "SELECT",
                "db.operation.name" = "SELECT",
                "occ.lock.mode" = %format_args!("{strength}{wait}"),
                "occ.lock.timeout_ms" = timeout.map(|t| t.as_secs_f64() * 1e3),
            ),
            #[cfg(feature = "metrics")]
            timer: Some(crate::metrics::Timer::start("SELECT")),
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            labels,
            #[cfg(feature = "tracing")]
            attempts: Default::default(),
        }
    }

    /// A whole `retry`: every attempt, and the pauses between them. Not a
    /// database operation of its own (its statements are the body's), so
    /// an internal span without a duration metric.
    pub(crate) fn retry<DB: Hooks>() -> Self {
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let labels = Labels::of::<DB>(None);
        Self {
            #[cfg(feature = "tracing")]
            span: span!(
                "occ.retry",
                "internal",
                labels,
                "occ.retry",
                "occ.attempt" = tracing::field::Empty,
            ),
            #[cfg(feature = "metrics")]
            timer: None,
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            labels,
            #[cfg(feature = "tracing")]
            attempts: Default::default(),
        }
    }

    /// A whole `modify` of a row of `table`, with its strategy: internal,
    /// as `retry`; its writes are spans of their own.
    pub(crate) fn modify<DB: Hooks>(table: &'static str, strategy: &'static str) -> Self {
        let _ = (table, strategy);
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let labels = Labels::of::<DB>(Some(table));
        Self {
            #[cfg(feature = "tracing")]
            span: span!(
                "occ.modify",
                "internal",
                labels,
                "occ.modify",
                "occ.strategy" = strategy,
                "occ.attempt" = tracing::field::Empty,
            ),
            #[cfg(feature = "metrics")]
            timer: None,
            #[cfg(any(feature = "tracing", feature = "metrics"))]
            labels,
            #[cfg(feature = "tracing")]
            attempts: Default::default(),
        }
    }

    /// Runs `future` inside this operation's span.
    pub(crate) async fn enter<F: Future>(&self, future: F) -> F::Output {
        #[cfg(feature = "tracing")]
        return tracing::Instrument::instrument(future, self.span.clone()).await;
        #[cfg(not(feature = "tracing"))]
        future.await
    }

    /// Runs `future` inside this operation's span and finishes the
    /// operation with its outcome.
    pub(crate) async fn run<T, E: AsOccError>(
        &self,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.run_counting(future, |_| 0).await
    }

    /// [`run`](Self::run), for an operation whose success can hold
    /// conflicts (`conflicts` counts them): a batch's rows, a write
    /// answered with the current row.
    pub(crate) async fn run_counting<T, E: AsOccError>(
        &self,
        future: impl Future<Output = Result<T, E>>,
        conflicts: impl FnOnce(&T) -> usize,
    ) -> Result<T, E> {
        let result = self.enter(future).await;
        if let Ok(value) = &result {
            self.conflicts(conflicts(value));
        }
        self.finish(result.as_ref().err());
        result
    }

    /// Attempt `attempt` (1 for the first) starts.
    pub(crate) fn attempt(&self, attempt: u32) {
        let _ = attempt;
        #[cfg(feature = "tracing")]
        self.attempts
            .store(attempt, core::sync::atomic::Ordering::Relaxed);
    }

    /// `rows` rows were found at another version, and the operation still
    /// succeeded.
    fn conflicts(&self, rows: usize) {
        let _ = rows;
        #[cfg(feature = "metrics")]
        crate::metrics::conflicts(&self.labels, rows);
    }

    /// The operation ended, failed with `error` if it is there: the span's
    /// status and error attributes, the duration and the counters.
    pub(crate) fn finish<E: AsOccError>(&self, error: Option<&E>) {
        let _ = error;
        #[cfg(any(feature = "tracing", feature = "metrics"))]
        let error = error.map(|e| (e.as_occ_error(), self.labels.error_type(e.as_occ_error())));
        #[cfg(feature = "tracing")]
        match self.attempts.load(core::sync::atomic::Ordering::Relaxed) {
            0 => {}
            attempts => {
                self.span.record("occ.attempt", attempts);
            }
        }
        #[cfg(feature = "tracing")]
        if let Some((occ, error_type)) = error {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", error_type);
            if let Some(occ) = occ {
                self.span.record("occ.error.kind", occ.kind());
                if let Some(code) = (self.labels.status_code)(occ) {
                    self.span.record("db.response.status_code", code);
                }
            }
        }
        #[cfg(feature = "metrics")]
        if let Some(timer) = &self.timer {
            timer.stop(&self.labels, error);
        }
    }
}

/// A failure a caller may want to see in logs: conflicts and lock failures.
/// Other errors are the caller's to report.
pub(crate) fn failed(error: &OccError) {
    #[cfg(feature = "tracing")]
    if error.is_conflict() || error.is_lock_failure() {
        tracing::debug!(target: "occ", kind = error.kind(), "{error}");
    }
    #[cfg(not(feature = "tracing"))]
    let _ = error;
}

/// Attempt `attempt` failed with `error`; the next starts after `pause`.
pub(crate) fn retrying(operation: &Operation, attempt: u32, error: &OccError, pause: Duration) {
    let _ = (operation, attempt, error, pause);
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "occ",
        attempt,
        kind = error.kind(),
        pause_ms = pause.as_secs_f64() * 1e3,
        "occ.attempt" = attempt,
        "occ.backoff_ms" = pause.as_secs_f64() * 1e3,
        "retrying the transaction after: {error}"
    );
    #[cfg(feature = "metrics")]
    crate::metrics::retried(&operation.labels, error);
}

/// A retrying operation ends with `error` after `attempts` attempts; told
/// only for errors another attempt could have got past.
pub(crate) fn gave_up(operation: &Operation, attempts: u32, error: &OccError) {
    let _ = (operation, attempts);
    if error.is_retryable() || error.is_lock_failure() {
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "occ",
            attempts,
            kind = error.kind(),
            "gave up after {attempts} attempts: {error}"
        );
        #[cfg(feature = "metrics")]
        crate::metrics::gave_up(&operation.labels, error);
    }
}

/// A row became hot: `modify` queues its writers in the process from now
/// on, and locks it against writers of other processes.
pub(crate) fn heated(table: &str, key: &str, heat: f32) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "occ",
        table,
        key,
        heat,
        strategy = "queued",
        "{table} ({key}) is hot: modify queues its writers and locks it against others"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (table, key, heat);
}

/// A hot row cooled: `modify` reads it plainly again.
pub(crate) fn cooled(table: &str, key: &str, heat: f32) {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "occ",
        table,
        key,
        heat,
        strategy = "optimistic",
        "{table} ({key}) cooled: modify reads it without a lock"
    );
    #[cfg(not(feature = "tracing"))]
    let _ = (table, key, heat);
}
