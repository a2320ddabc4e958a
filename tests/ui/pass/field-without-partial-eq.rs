// A field whose type is not `PartialEq`: the model derives and writes as any
// other; only `changed_fields`, which compares fields, is not available.
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Integer;
use diesel::sqlite::{Sqlite, SqliteValue};
use occ::prelude::*;

diesel::table! {
    gauges (id) {
        id -> Integer,
        reading -> Integer,
        version -> Integer,
    }
}

/// A sensor reading that cannot be compared.
#[derive(Debug, Clone, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = Integer)]
struct Reading(i32);

impl ToSql<Integer, Sqlite> for Reading {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <i32 as ToSql<Integer, Sqlite>>::to_sql(&self.0, out)
    }
}

impl FromSql<Integer, Sqlite> for Reading {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        <i32 as FromSql<Integer, Sqlite>>::from_sql(value).map(Reading)
    }
}

#[derive(Queryable, Selectable, Optimistic)]
struct Gauge {
    id: i32,
    reading: Reading,
    #[occ(version)]
    version: i32,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE gauges (id INTEGER PRIMARY KEY, reading INTEGER NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO gauges VALUES (1, 5, 0)")
        .execute(&mut conn)
        .unwrap();
    let mut gauge: Gauge = gauges::table
        .find(1)
        .select(Gauge::as_select())
        .first(&mut conn)
        .unwrap();
    gauge.reading = Reading(gauge.reading.0 + 1);
    gauge.update_versioned(&mut conn).unwrap();
    let mut batch = vec![gauge];
    assert!(Gauge::update_versioned_all(&mut conn, &mut batch).unwrap().is_complete());
    assert_eq!(batch[0].version, 2);
}
