use occ::prelude::*;

diesel::table! {
    accounts (id) {
        id -> Integer,
        balance -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Optimistic)]
#[diesel(table_name = accounts, primary_key())]
struct Account {
    id: i32,
    balance: i32,
    #[occ(version)]
    version: i32,
}

fn main() {}
