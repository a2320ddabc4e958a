//! occ's spans and metrics as OpenTelemetry receives them: the spans through
//! tracing-opentelemetry into the SDK's in-memory span exporter, the metrics
//! through the global meter provider into its in-memory metric exporter.
//!
//! One subscriber and one meter provider for the whole binary, installed
//! before any occ call: tracing caches per call site whether anyone
//! listens, and occ creates its instruments once, on first use. The tests
//! take turns (`exclusive`), as the exporters are shared.

#![cfg(all(feature = "tracing", feature = "metrics"))]

mod common;

use std::sync::{Mutex, MutexGuard, OnceLock};

use common::{counters, Counter, TestDb};
use occ::prelude::*;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

struct Telemetry {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    meters: SdkMeterProvider,
}

fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let tracer = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build()
            .tracer("occ-tests");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        // Delta: each flush holds what happened since the one before.
        let metrics = opentelemetry_sdk::metrics::InMemoryMetricExporterBuilder::new()
            .with_temporality(Temporality::Delta)
            .build();
        let meters = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        opentelemetry::global::set_meter_provider(meters.clone());
        Telemetry {
            spans,
            metrics,
            meters,
        }
    })
}

/// This test's turn with the exporters, emptied.
fn exclusive() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let telemetry = telemetry();
    telemetry.meters.force_flush().unwrap();
    telemetry.metrics.reset();
    telemetry.spans.reset();
    turn
}

/// The spans finished since the last call.
fn spans() -> Vec<SpanData> {
    let spans = telemetry().spans.get_finished_spans().unwrap();
    telemetry().spans.reset();
    spans
}

fn attribute<'a>(attributes: impl IntoIterator<Item = &'a KeyValue>, key: &str) -> Option<String> {
    attributes
        .into_iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => other.to_string(),
        })
}

/// The one span named `name`, of all in `spans`.
fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name}: {:#?}", names(spans));
    found[0]
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_ref()).collect()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    attribute(&span.attributes, key)
}

/// The metrics recorded since the last call.
fn metrics() -> Vec<ResourceMetrics> {
    let telemetry = telemetry();
    telemetry.meters.force_flush().unwrap();
    let exported = telemetry.metrics.get_finished_metrics().unwrap();
    telemetry.metrics.reset();
    exported
}

/// The data points of metric `name` in `exported`: for each, its
/// attributes and its value (a counter's sum, a histogram's count).
fn points(exported: &[ResourceMetrics], name: &str) -> Vec<(Vec<KeyValue>, u64)> {
    let mut points = Vec::new();
    for resource in exported {
        for scope in resource
            .scope_metrics()
            .filter(|s| s.scope().name() == "occ")
        {
            for metric in scope.metrics().filter(|m| m.name() == name) {
                match metric.data() {
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                        for p in sum.data_points() {
                            points.push((p.attributes().cloned().collect(), p.value()));
                        }
                    }
                    AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                        let bounds: Vec<f64> =
                            histogram.data_points().next().unwrap().bounds().collect();
                        assert_eq!(
                            bounds,
                            [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0],
                            "the convention's buckets"
                        );
                        assert_eq!(metric.unit(), "s");
                        for p in histogram.data_points() {
                            points.push((p.attributes().cloned().collect(), p.count()));
                        }
                    }
                    other => panic!("{name} is not a u64 counter or an f64 histogram: {other:?}"),
                }
            }
        }
    }
    points
}

/// The value of the data point of `points` whose attributes include all of
/// `want`.
fn value(points: &[(Vec<KeyValue>, u64)], want: &[(&str, &str)]) -> u64 {
    points
        .iter()
        .filter(|(attributes, _)| {
            want.iter()
                .all(|(k, v)| attribute(attributes, k).as_deref() == Some(*v))
        })
        .map(|(_, value)| value)
        .sum()
}

fn setup<D: TestDb>(db: &D) -> D::Conn {
    db.exec(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
         version INTEGER NOT NULL)",
    );
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0), (2, 0, 0), (3, 0, 0)");
    db.conn()
}

/// The name a backend goes by in `db.system.name`: the MySQL backend says
/// `mariadb` once it has seen a MariaDB server, which a lock elsewhere in
/// this binary may have done already.
fn system_of(name: &str) -> &'static [&'static str] {
    if name.contains("Pg") {
        &["postgresql"]
    } else if name.contains("Mysql") {
        &["mysql", "mariadb"]
    } else {
        &["sqlite"]
    }
}

per_backend! {
    fn writes_batches_and_retries_are_spans_and_metrics(db) {
        let _turn = exclusive();
        let mut conn = setup(&db);
        let systems = system_of(std::any::type_name_of_val(&conn));
        let rows: Vec<Counter> = counters::table
            .order(counters::id)
            .select(Counter::as_select())
            .load(&mut conn)
            .unwrap();
        spans();
        metrics();

        // A versioned write that succeeds.
        let mut first = rows[0].clone();
        first.value = 1;
        first.update_versioned(&mut conn).unwrap();
        let spans_now = spans();
        let write = span(&spans_now, "UPDATE counters");
        assert_eq!(write.span_kind, SpanKind::Client);
        assert_eq!(write.status, Status::Unset);
        let system = attr(write, "db.system.name").unwrap();
        assert!(systems.contains(&system.as_str()), "{system}");
        assert_eq!(attr(write, "db.operation.name").as_deref(), Some("UPDATE"));
        assert_eq!(attr(write, "db.collection.name").as_deref(), Some("counters"));
        assert_eq!(attr(write, "error.type"), None);
        let durations = points(&metrics(), "db.client.operation.duration");
        let labels = [
            ("db.system.name", system.as_str()),
            ("db.operation.name", "UPDATE"),
            ("db.collection.name", "counters"),
        ];
        assert_eq!(value(&durations, &labels), 1, "{durations:?}");
        assert!(durations.iter().all(|(a, _)| attribute(a, "error.type").is_none()));

        // The same write again, from the copy now one version behind.
        let mut stale = rows[0].clone();
        stale.value = 2;
        assert!(stale.update_versioned(&mut conn).unwrap_err().is_conflict());
        let spans_now = spans();
        let conflict = span(&spans_now, "UPDATE counters");
        assert!(matches!(conflict.status, Status::Error { .. }), "{:?}", conflict.status);
        assert_eq!(attr(conflict, "error.type").as_deref(), Some("conflict"));
        assert_eq!(attr(conflict, "occ.error.kind").as_deref(), Some("conflict"));
        let exported = metrics();
        let conflicts = points(&exported, "occ.conflicts");
        assert_eq!(
            value(&conflicts, &[("db.collection.name", "counters"), ("db.system.name", &system)]),
            1,
            "{conflicts:?}"
        );
        let durations = points(&exported, "db.client.operation.duration");
        assert_eq!(value(&durations, &[("error.type", "conflict")]), 1, "{durations:?}");

        // A batch of the other two rows.
        let mut batch = rows[1..].to_vec();
        assert!(Counter::update_versioned_all(&mut conn, &mut batch).unwrap().is_complete());
        let spans_now = spans();
        let written = span(&spans_now, "BATCH UPDATE counters");
        assert_eq!(written.span_kind, SpanKind::Client);
        assert_eq!(attr(written, "db.operation.name").as_deref(), Some("BATCH UPDATE"));
        assert_eq!(attr(written, "db.operation.batch.size").as_deref(), Some("2"));
        // A batch's own conflicts count too, though the batch succeeds.
        let mut again = rows[1..].to_vec();
        let report = Counter::update_versioned_all(&mut conn, &mut again).unwrap();
        assert_eq!(report.conflicts().len(), 2);
        assert_eq!(value(&points(&metrics(), "occ.conflicts"), &[("db.collection.name", "counters")]), 2);
        spans();

        // A retry whose first attempt conflicts and whose second writes.
        let mut attempt = 0;
        occ::retry(&mut conn, &RetryPolicy::default(), |conn| {
            attempt += 1;
            let version = if attempt == 1 { 0 } else { 1 };
            Counter::update_if_version(conn, 1, version, counters::value.eq(3))?;
            Ok::<_, OccError>(())
        })
        .unwrap();
        let spans_now = spans();
        let retry = span(&spans_now, "occ.retry");
        assert_eq!(retry.span_kind, SpanKind::Internal);
        assert_eq!(retry.status, Status::Unset);
        assert_eq!(attr(retry, "occ.attempt").as_deref(), Some("2"));
        let retrying = retry
            .events
            .iter()
            .find(|e| e.name.starts_with("retrying the transaction"))
            .unwrap_or_else(|| panic!("{:#?}", retry.events));
        assert_eq!(attribute(&retrying.attributes, "occ.attempt").as_deref(), Some("1"));
        assert!(attribute(&retrying.attributes, "occ.backoff_ms").is_some());
        // Both attempts' writes are children of the retry.
        let writes: Vec<_> = spans_now.iter().filter(|s| s.name == "UPDATE counters").collect();
        assert_eq!(writes.len(), 2, "{:?}", names(&spans_now));
        assert!(writes.iter().all(|w| w.parent_span_id == retry.span_context.span_id()));
        let retries = points(&metrics(), "occ.retries");
        assert_eq!(
            value(&retries, &[("db.collection.name", "counters"), ("occ.error.kind", "conflict")]),
            1,
            "{retries:?}"
        );

        // modify names its strategy.
        Counter::modify(&mut conn, 2, |c| {
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .unwrap();
        let spans_now = spans();
        let modify = span(&spans_now, "occ.modify counters");
        assert_eq!(attr(modify, "occ.strategy").as_deref(), Some("adaptive"));
        assert_eq!(attr(modify, "occ.attempt").as_deref(), Some("1"));
    }
}

/// Row locks, on the servers only.
mod locks {
    use super::*;

    per_server! {
        fn locked_reads_are_spans_with_their_mode(db) {
            let _turn = exclusive();
            let mut conn = setup(&db);
            let mut other = db.conn();
            let server_is_mariadb = std::any::type_name_of_val(&conn).contains("Mysql")
                && diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("VERSION()"))
                    .get_result::<String>(&mut conn)
                    .unwrap()
                    .contains("MariaDB");
            spans();
            conn.transaction(|conn| {
                Counter::lock(1).exclusive().nowait().get_result(conn)?;
                counters::table.find(2).select(counters::id).shared().load::<i32, _>(conn)?;
                // Another connection asks for the row this one holds.
                let refused = other
                    .transaction(|other| Counter::lock(1).exclusive().nowait().get_result(other));
                assert!(refused.unwrap_err().is_lock_failure());
                Ok::<_, OccError>(())
            })
            .unwrap();
            let spans_now = spans();
            let by_key: Vec<_> = spans_now.iter().filter(|s| s.name == "SELECT counters").collect();
            assert_eq!(by_key.len(), 2, "{:?}", names(&spans_now));
            for locked in &by_key {
                assert_eq!(locked.span_kind, SpanKind::Client);
                assert_eq!(attr(locked, "db.operation.name").as_deref(), Some("SELECT"));
                assert_eq!(attr(locked, "occ.lock.mode").as_deref(), Some("for_update_nowait"));
            }
            let failed = by_key
                .iter()
                .find(|s| matches!(s.status, Status::Error { .. }))
                .expect("the refused lock's span");
            let code = attr(failed, "error.type").unwrap();
            if std::any::type_name_of_val(&conn).contains("Pg") {
                assert_eq!(code, "55P03");
            } else {
                // MariaDB reports a failed NOWAIT as a lock wait timeout.
                assert!(code == "1205" || code == "3572", "{code}");
            }
            assert_eq!(attr(failed, "occ.error.kind").as_deref(), Some("lock_not_available"));
            assert_eq!(attr(failed, "db.response.status_code"), Some(code));
            // A query's lock has no model, so no table.
            let shared = span(&spans_now, "SELECT");
            assert_eq!(attr(shared, "occ.lock.mode").as_deref(), Some("for_share"));
            assert_eq!(attr(shared, "db.collection.name"), None);
            let failures = points(&metrics(), "occ.lock_failures");
            assert_eq!(
                value(&failures, &[("db.collection.name", "counters"), ("occ.error.kind", "lock_not_available")]),
                1,
                "{failures:?}"
            );
            // The lock asked the server its dialect: the MySQL backend now
            // knows a MariaDB server for what it is.
            if server_is_mariadb {
                Counter::update_if_version(&mut conn, 3, 0, counters::value.eq(1)).unwrap();
                let spans_now = spans();
                let write = span(&spans_now, "UPDATE counters");
                assert_eq!(attr(write, "db.system.name").as_deref(), Some("mariadb"));
            }
        }
    }
}
