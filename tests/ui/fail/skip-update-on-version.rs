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
    #[occ(version, skip_update)]
    version: i32,
}

fn main() {}
