use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        name -> Text,
        version -> Double,
    }
}

#[derive(Optimistic)]
struct Product {
    id: i32,
    name: String,
    #[occ(version)]
    version: f64,
}

fn main() {}
