use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
struct Product {
    id: i32,
    name: String,
    version: i32,
}

// No field that looks like a version: the error is on the struct.
#[derive(Optimistic)]
#[diesel(table_name = products)]
struct ProductName {
    id: i32,
    name: String,
}

fn main() {}
