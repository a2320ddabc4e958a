use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Nullable<Integer>,
    }
}

#[derive(Optimistic)]
struct Product {
    id: i32,
    name: String,
    #[occ(version)]
    version: Option<i32>,
}

fn main() {}
