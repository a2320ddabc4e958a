//! Every version type through its real column on each backend that has it:
//! `chrono::DateTime<Utc>` (`timestamptz`), the `time` crate's
//! `PrimitiveDateTime` and `OffsetDateTime`, and `uuid::Uuid` (PostgreSQL).
//! Each write stores a new version that reads back equal, a stale write
//! conflicts and names the version found, batches work, and the version's
//! text (an entity tag's) reads back.

mod common;

#[allow(unused_imports)]
use common::TestDb;

/// The test of one module: its `stamps` table is created with the version
/// column `$ddl` on the database `$open` gives, starting at `$initial`. Each
/// module spells its table and model out in full, as a user writes them: the
/// derive must see the version's type exactly as written.
#[allow(unused_macros)]
macro_rules! round_trip {
    ($open:expr, $ddl:literal, $initial:expr) => {
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
                .values((
                    stamps::id.eq(1),
                    stamps::value.eq(0),
                    stamps::version.eq($initial),
                ))
                .execute(&mut conn)
                .unwrap();
            let read = |conn: &mut _| -> Row {
                stamps::table
                    .find(1)
                    .select(Row::as_select())
                    .first(conn)
                    .unwrap()
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
                Err(OccError::Conflict { actual, .. }) => {
                    assert_eq!(actual, row.version.to_string())
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
            let mut batch = vec![row.clone()];
            assert!(Row::update_versioned_all(&mut conn, &mut batch)
                .unwrap()
                .is_complete());
            assert_eq!(read(&mut conn), batch[0]);
            let text = batch[0].version.to_string();
            assert_eq!(
                parse_like(&batch[0].version, &text),
                Some(batch[0].version.clone()),
                "{text}"
            );
            batch[0].delete_versioned(&mut conn).unwrap();
        }
    };
}

#[allow(dead_code)]
fn parse_like<V: occ::Version>(_: &V, text: &str) -> Option<V> {
    V::from_text(text)
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
        <common::MysqlDb>::new(module_path!())
    };
}

#[cfg(all(feature = "chrono", feature = "sqlite"))]
mod chrono_utc_sqlite {
    use super::*;
    use chrono::{DateTime, Utc};
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> TimestamptzSqlite,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: DateTime<Utc>,
    }

    round_trip!(sqlite!(), "TEXT", Utc::now());
}

#[cfg(all(feature = "chrono", feature = "postgres"))]
mod chrono_utc_postgres {
    use super::*;
    use chrono::{DateTime, Utc};
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamptz,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: DateTime<Utc>,
    }

    round_trip!(pg!(), "TIMESTAMPTZ", Utc::now());
}

#[cfg(all(feature = "chrono", feature = "postgres"))]
mod chrono_utc_qualified_postgres {
    use super::*;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamptz,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: chrono::DateTime<chrono::Utc>,
    }

    round_trip!(pg!(), "TIMESTAMPTZ", chrono::Utc::now());
}

#[cfg(all(feature = "chrono", feature = "sqlite"))]
mod chrono_utc_alias_sqlite {
    use super::*;
    use chrono::{DateTime, Utc};
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> TimestamptzSqlite,
        }
    }

    type Stamp = DateTime<Utc>;

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: Stamp,
    }

    round_trip!(sqlite!(), "TEXT", Utc::now());
}

#[cfg(all(feature = "chrono", feature = "mysql"))]
mod chrono_naive_mysql {
    use super::*;
    use chrono::NaiveDateTime;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Datetime,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: NaiveDateTime,
    }

    round_trip!(mysql!(), "DATETIME(6)", chrono::Utc::now().naive_utc());
}

#[cfg(all(feature = "chrono", feature = "postgres"))]
mod chrono_naive_postgres {
    use super::*;
    use chrono::NaiveDateTime;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamp,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: NaiveDateTime,
    }

    round_trip!(pg!(), "TIMESTAMP", chrono::Utc::now().naive_utc());
}

#[cfg(all(feature = "chrono", feature = "sqlite"))]
mod chrono_naive_sqlite {
    use super::*;
    use chrono::NaiveDateTime;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamp,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: NaiveDateTime,
    }

    round_trip!(sqlite!(), "TEXT", chrono::Utc::now().naive_utc());
}

#[cfg(all(feature = "time", feature = "sqlite"))]
mod time_primitive_sqlite {
    use super::*;
    use occ::prelude::*;
    use time::PrimitiveDateTime;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamp,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: PrimitiveDateTime,
    }

    round_trip!(sqlite!(), "TEXT", now_primitive());
}

#[cfg(all(feature = "time", feature = "postgres"))]
mod time_primitive_postgres {
    use super::*;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamp,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: time::PrimitiveDateTime,
    }

    round_trip!(pg!(), "TIMESTAMP", now_primitive());
}

#[cfg(all(feature = "time", feature = "mysql"))]
mod time_primitive_mysql {
    use super::*;
    use occ::prelude::*;
    use time::PrimitiveDateTime;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Datetime,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: PrimitiveDateTime,
    }

    round_trip!(mysql!(), "DATETIME(6)", now_primitive());
}

#[cfg(all(feature = "time", feature = "sqlite"))]
mod time_offset_sqlite {
    use super::*;
    use occ::prelude::*;
    use time::OffsetDateTime;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> TimestamptzSqlite,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: OffsetDateTime,
    }

    round_trip!(sqlite!(), "TEXT", OffsetDateTime::now_utc());
}

#[cfg(all(feature = "time", feature = "postgres"))]
mod time_offset_postgres {
    use super::*;
    use occ::prelude::*;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Timestamptz,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: time::OffsetDateTime,
    }

    round_trip!(pg!(), "TIMESTAMPTZ", time::OffsetDateTime::now_utc());
}

#[cfg(all(feature = "time", feature = "mysql"))]
mod time_offset_mysql {
    use super::*;
    use occ::prelude::*;
    use time::OffsetDateTime;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Datetime,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: OffsetDateTime,
    }

    round_trip!(mysql!(), "DATETIME(6)", OffsetDateTime::now_utc());
}

#[cfg(all(feature = "uuid", feature = "postgres"))]
mod uuid_postgres {
    use super::*;
    use occ::prelude::*;
    use uuid::Uuid;

    diesel::table! {
        use diesel::sql_types::*;
        stamps (id) {
            id -> Integer,
            value -> Integer,
            version -> Uuid,
        }
    }

    #[derive(Queryable, Selectable, Optimistic, Debug, Clone, PartialEq)]
    #[diesel(table_name = stamps)]
    struct Row {
        id: i32,
        value: i32,
        #[occ(version)]
        version: Uuid,
    }

    round_trip!(pg!(), "UUID", Uuid::new_v4());
}

#[cfg(feature = "time")]
#[allow(dead_code)]
fn now_primitive() -> time::PrimitiveDateTime {
    let now = time::OffsetDateTime::now_utc();
    time::PrimitiveDateTime::new(now.date(), now.time())
}
