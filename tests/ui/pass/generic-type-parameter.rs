// A generic field in a writable column: the derive bounds `V` by what the
// column needs, so any value type that fits `Text` works.
use occ::prelude::*;

diesel::table! {
    settings (id) {
        id -> Integer,
        value -> Text,
        version -> BigInt,
    }
}

#[derive(Optimistic)]
#[diesel(table_name = settings)]
struct Setting<V> {
    id: i32,
    value: V,
    #[occ(version)]
    version: i64,
}

// Key and version generic too: each bound is checked where the model is used.
#[derive(Optimistic)]
#[diesel(table_name = settings)]
struct Typed<K, V, N> {
    id: K,
    value: V,
    #[occ(version)]
    version: N,
}

fn value(conn: &mut SqliteConnection) -> (String, i64) {
    settings::table
        .find(7)
        .select((settings::value, settings::version))
        .first(conn)
        .unwrap()
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE settings (id INTEGER PRIMARY KEY, value TEXT NOT NULL, version BIGINT NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO settings VALUES (7, 'light', 41)")
        .execute(&mut conn)
        .unwrap();

    let mut owned = Setting {
        id: 7,
        value: String::from("dark"),
        version: 41_i64,
    };
    owned.update_versioned(&mut conn).unwrap();
    assert_eq!(value(&mut conn), ("dark".to_owned(), 42));

    let mut borrowed = Setting {
        id: 7,
        value: "auto",
        version: 42_i64,
    };
    borrowed.update_versioned(&mut conn).unwrap();
    assert_eq!(value(&mut conn), ("auto".to_owned(), 43));

    let err = owned.update_versioned(&mut conn).unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let mut typed = Typed {
        id: 7,
        value: "system",
        version: 43_i64,
    };
    typed.update_versioned(&mut conn).unwrap();
    assert_eq!(typed.version, 44);
    assert_eq!(value(&mut conn), ("system".to_owned(), 44));
    typed.version = 43;
    let err = typed.update_versioned(&mut conn).unwrap_err();
    assert!(err.to_string().contains("id = 7"), "{err}");
    assert_eq!(
        Typed::<i32, &str, i64>::update_if_version(&mut conn, 7, 44, settings::value.eq("x"))
            .unwrap(),
        45
    );
}
