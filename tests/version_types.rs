//! Every version type through its real column on each backend that has it:
//! `chrono::DateTime<Utc>` (`timestamptz`), the `time` crate's
//! `PrimitiveDateTime` and `OffsetDateTime`, and `uuid::Uuid` (PostgreSQL).
//! Each write stores a new version that reads back equal, a stale write
//! conflicts and names the version found, batches work, and the version's
//! text (an entity tag's) reads back.

mod common;

#[allow(unused_imports)]
use common::TestDb;

/// A module with a table whose version column has SQL type `$sql` (created
/// as `$ddl`), a model whose version is `$rust`, and the test, on the
/// database `$open` gives.
macro_rules! version_type {
    ($name:ident, [$($cfg:meta),*], $open:expr, $sql:ident, $rust:ty, $ddl:literal, $initial:expr) => {
        #[cfg(all($($cfg),*))]
        mod $name {
            use super::*;
            use occ::prelude::*;

            diesel::table! {
                use diesel::sql_types::*;
                stamps (id) {
                    id -> Integer,
                    value -> Integer,
                    version -> $sql,
                }
            }

            #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
            #[diesel(table_name = stamps)]
            struct Row {
                id: i32,
                value: i32,
                #[occ(version)]
                version: $rust,
            }

            #[test]
            fn writes_new_versions_that_read_back_and_conflict() {
                let Some(db) = $open else { return };
                db.exec(concat!(
                    "CREATE TABLE stamps (id INTEGER PRIMARY KEY, value INTEGER NOT NULL, version ",
                    $ddl,
                    " NOT NULL)"
                ));
                let mut conn = db.conn();
                diesel::insert_into(stamps::table)
                    .values((stamps::id.eq(1), stamps::value.eq(0), stamps::version.eq($initial)))
                    .execute(&mut conn)
                    .unwrap();
                let read = |conn: &mut _| -> Row {
                    stamps::table.find(1).select(Row::as_select()).first(conn).unwrap()
                };
                let mut row = read(&mut conn);
                let stale = row.clone();
                let mut seen = vec![row.version.clone()];
                // Writes in quick succession: each version is new and is
                // exactly what the column gives back.
                for _ in 0..3 {
                    row.value += 1;
                    row.update_versioned(&mut conn).unwrap();
                    assert!(!seen.contains(&row.version), "{:?} is new", row.version);
                    seen.push(row.version.clone());
                    assert_eq!(read(&mut conn), row, "the version reads back as written");
                }
                let mut stale = stale;
                stale.value = 99;
                match stale.update_versioned(&mut conn) {
                    Err(OccError::Conflict { actual, .. }) => assert_eq!(actual, row.version.to_string()),
                    other => panic!("expected a conflict, got {other:?}"),
                }
                let mut batch = vec![row.clone()];
                assert!(Row::update_versioned_all(&mut conn, &mut batch).unwrap().is_complete());
                assert_eq!(read(&mut conn), batch[0]);
                let text = batch[0].version.to_string();
                assert_eq!(<$rust as occ::Version>::from_text(&text), Some(batch[0].version.clone()), "{text}");
                batch[0].delete_versioned(&mut conn).unwrap();
            }
        }
    };
}

#[allow(unused_macros)]
macro_rules! sqlite {
    () => {
        Some(common::SqliteDb::new(module_path!()))
    };
}
#[allow(unused_macros)]
macro_rules! pg {
    () => {
        common::PgDb::new(module_path!())
    };
}
#[allow(unused_macros)]
macro_rules! mysql {
    () => {
        common::MysqlDb::new(module_path!())
    };
}

version_type!(
    chrono_utc_sqlite,
    [feature = "chrono", feature = "sqlite"],
    sqlite!(),
    TimestamptzSqlite,
    chrono::DateTime<chrono::Utc>,
    "TEXT",
    chrono::Utc::now()
);
version_type!(
    chrono_utc_postgres,
    [feature = "chrono", feature = "postgres"],
    pg!(),
    Timestamptz,
    chrono::DateTime<chrono::Utc>,
    "TIMESTAMPTZ",
    chrono::Utc::now()
);

version_type!(
    time_primitive_sqlite,
    [feature = "time", feature = "sqlite"],
    sqlite!(),
    Timestamp,
    time::PrimitiveDateTime,
    "TEXT",
    now_primitive()
);
version_type!(
    time_primitive_postgres,
    [feature = "time", feature = "postgres"],
    pg!(),
    Timestamp,
    time::PrimitiveDateTime,
    "TIMESTAMP",
    now_primitive()
);
version_type!(
    time_primitive_mysql,
    [feature = "time", feature = "mysql"],
    mysql!(),
    Datetime,
    time::PrimitiveDateTime,
    "DATETIME(6)",
    now_primitive()
);

version_type!(
    time_offset_sqlite,
    [feature = "time", feature = "sqlite"],
    sqlite!(),
    TimestamptzSqlite,
    time::OffsetDateTime,
    "TEXT",
    time::OffsetDateTime::now_utc()
);
version_type!(
    time_offset_postgres,
    [feature = "time", feature = "postgres"],
    pg!(),
    Timestamptz,
    time::OffsetDateTime,
    "TIMESTAMPTZ",
    time::OffsetDateTime::now_utc()
);
version_type!(
    time_offset_mysql,
    [feature = "time", feature = "mysql"],
    mysql!(),
    Datetime,
    time::OffsetDateTime,
    "DATETIME(6)",
    time::OffsetDateTime::now_utc()
);

version_type!(
    uuid_postgres,
    [feature = "uuid", feature = "postgres"],
    pg!(),
    Uuid,
    uuid::Uuid,
    "UUID",
    uuid::Uuid::new_v4()
);

#[cfg(feature = "time")]
#[allow(dead_code)]
fn now_primitive() -> time::PrimitiveDateTime {
    let now = time::OffsetDateTime::now_utc();
    time::PrimitiveDateTime::new(now.date(), now.time())
}
