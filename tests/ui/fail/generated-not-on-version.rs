use occ::prelude::*;

diesel::table! {
    docs (id) {
        id -> Integer,
        body -> Text,
        version -> Integer,
    }
}

#[derive(Optimistic)]
struct Doc {
    id: i32,
    #[occ(generated)]
    body: String,
    #[occ(version)]
    version: i32,
}

fn main() {}
