use occ::prelude::*;

diesel::table! {
    products (id) {
        id -> Integer,
        qty -> Integer,
        version -> Integer,
    }
}

#[derive(Queryable, Optimistic)]
struct Product {
    id: i32,
    qty: i32,
    #[occ(version)]
    version: i32,
}

fn main() {
    let product = Product { id: 1, qty: 2, version: 0 };
    // The prelude brings what a model can do, not the derive's description.
    let _ = product.key();
    let _ = product.changeset();
}
