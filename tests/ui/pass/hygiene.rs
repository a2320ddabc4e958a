// The generated impl names everything by absolute path and binds nothing a
// user's item can capture: the model lives in a module without the prelude
// whose local items shadow std's, core's, diesel's and occ's names, and the
// names the impl binds.
#![allow(dead_code, non_camel_case_types, non_upper_case_globals)]

::diesel::table! {
    items (id) {
        id -> Integer,
        label -> Text,
        version -> Integer,
    }
}

#[no_implicit_prelude]
mod model {
    mod core {}
    mod std {}
    mod diesel {}
    mod occ {}

    struct Result;
    struct Option;
    struct Some;
    struct None;
    struct Ok;
    struct Err;
    struct String;
    struct Vec;
    struct Box;
    struct From;
    struct Into;
    struct Send;
    struct Sized;
    struct Expression;
    struct AsExpression;
    struct AsChangeset;
    trait Clone {}
    trait Debug {}
    trait Optimistic {}
    trait Version {}
    // A unit struct or const named like a binding of the impl would turn the
    // binding into a pattern.
    struct key;
    const version: u8 = 0;
    struct id;

    use super::items;

    #[derive(::occ::Optimistic)]
    #[diesel(table_name = items)]
    pub struct Item {
        pub id: i32,
        pub label: ::std::string::String,
        #[occ(version)]
        pub version: i32,
    }
}

use model::Item;
use occ::prelude::*;

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO items VALUES (1, 'old', 0)")
        .execute(&mut conn)
        .unwrap();

    let mut item = Item {
        id: 1,
        label: String::from("new"),
        version: 0,
    };
    item.update_versioned(&mut conn).unwrap();
    assert_eq!(item.version, 1);
    let row: (String, i32) = items::table
        .find(1)
        .select((items::label, items::version))
        .first(&mut conn)
        .unwrap();
    assert_eq!(row, ("new".to_owned(), 1));
    item.version = 0;
    let err = item.update_versioned(&mut conn).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert!(err.to_string().contains("id = 1"), "{err}");
}
