use occ::prelude::*;

diesel::table! {
    jobs (id) {
        id -> Integer,
        state -> Text,
    }
}

fn main() {
    let _ = jobs::table
        .select(jobs::id)
        .exclusive()
        .nowait()
        .skip_locked();
}
