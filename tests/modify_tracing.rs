//! `modify`'s tracing events, in a test binary of their own: tracing caches
//! per call site whether anyone listens, and a test on another thread that
//! reaches the same call site without a subscriber can race the scoped
//! subscriber of this one (seen in CI with the rest of tests/modify.rs).

#![cfg(all(feature = "tracing", feature = "postgres"))]

mod common;

use std::sync::Arc;

use common::{Counter, TestDb};
use occ::prelude::*;
use occ::{ModifyPolicy, Temperature};

fn setup<D: TestDb>(db: &D) -> D::Conn {
    db.exec(
        "CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, \
         version INTEGER NOT NULL)",
    );
    db.exec("INSERT INTO counters (id, value, version) VALUES (1, 0, 0)");
    db.conn()
}

/// With the `tracing` feature, a row that becomes hot and one that cools
/// are events on target `occ`, with the table, the key and the strategy.
#[test]
fn a_row_becoming_hot_and_cooling_are_tracing_events() {
    use std::time::Duration;

    let Some(db) = common::PgDb::new("modify::a_row_becoming_hot_and_cooling_are_tracing_events")
    else {
        return;
    };
    let mut conn = setup(&db);
    let mut other = db.conn();
    let table = Arc::new(Temperature::new().with_half_life(Duration::from_millis(30)));
    let policy = ModifyPolicy::default().temperature(Arc::clone(&table));
    let ((), events) = common::traced(|| {
        let mut first = true;
        Counter::modify_with(&mut conn, 1, &policy, |c| {
            if std::mem::take(&mut first) {
                Counter::update_if_version(
                    &mut other,
                    1,
                    c.version,
                    common::counters::value.eq(50),
                )
                .unwrap();
            }
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        Counter::modify_with(&mut conn, 1, &policy, |c| {
            c.value += 1;
            Ok::<_, OccError>(())
        })
        .unwrap();
    });
    let heated = events
        .lines()
        .find(|l| l.contains("is hot"))
        .unwrap_or_else(|| panic!("{events}"));
    assert!(
        heated.starts_with(
            "DEBUG occ message=counters (id = 1) is hot: modify queues its writers and locks it against others"
        ),
        "{events}"
    );
    assert!(
        heated.contains(r#"table="counters" key="id = 1""#),
        "{heated}"
    );
    assert!(heated.ends_with(r#"strategy="queued""#), "{heated}");
    let cooled = events
        .lines()
        .find(|l| l.contains("cooled"))
        .unwrap_or_else(|| panic!("{events}"));
    assert!(
        cooled.starts_with(
            "DEBUG occ message=counters (id = 1) cooled: modify reads it without a lock"
        ),
        "{events}"
    );
    assert!(cooled.ends_with(r#"strategy="optimistic""#), "{cooled}");
}
