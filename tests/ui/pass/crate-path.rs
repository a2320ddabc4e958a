// A crate that reaches occ through its own re-export names that path with
// #[occ(crate = "...")]; the generated impl then uses it.
mod storage {
    pub mod concurrency {
        pub use occ::*;
    }
}

use occ::prelude::*;

diesel::table! {
    accounts (id) {
        id -> Integer,
        balance -> BigInt,
        version -> Integer,
    }
}

#[derive(storage::concurrency::Optimistic)]
#[occ(crate = "crate::storage::concurrency")]
struct Account {
    id: i32,
    balance: i64,
    #[occ(version)]
    version: i32,
}

fn main() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL, version INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .unwrap();
    diesel::sql_query("INSERT INTO accounts VALUES (1, 100, 0)")
        .execute(&mut conn)
        .unwrap();

    let mut account = Account {
        id: 1,
        balance: 70,
        version: 0,
    };
    storage::concurrency::OptimisticDsl::update_versioned(&mut account, &mut conn).unwrap();
    assert_eq!(account.version, 1);
    let balance: i64 = accounts::table
        .find(1)
        .select(accounts::balance)
        .first(&mut conn)
        .unwrap();
    assert_eq!(balance, 70);
}
