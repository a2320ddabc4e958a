use occ::prelude::*;

diesel::table! {
    products (sku) {
        sku -> Text,
        name -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
struct Product {
    sku: String,
    name: String,
    #[occ(version)]
    version: i32,
}

fn main() {}
