//! Compile tests, ignored by a plain `cargo test` for their build time
//! (`cargo test -- --include-ignored` runs them): each mistake in `tests/ui/fail` must be reported at its
//! culprit with a `help:` line (the expected output is the `.stderr` beside
//! it), and each model in `tests/ui/pass` must compile and work. They need only
//! the default `sqlite` feature.
//!
//! `tests/ui/locks` (a row lock on a SQLite connection) must give the same
//! message whichever other backends are compiled in, SQLite alone (what
//! `cargo test` on a fresh machine compiles) included: CI runs it in each
//! combination with `OCC_UI=locks`, which skips the rest.
//! `tests/ui/locks-async` holds the same on diesel-async's SQLite connection
//! (feature `async-sqlite`). `tests/ui/locks-pg` is a row type that does not
//! fit on a connection that has row locks, and `tests/ui/locks-pooled` a
//! lock on a pool's connection while occ's feature for that pool is off:
//! each runs in the feature sets where it applies.

#[test]
#[ignore = "builds every case in tests/ui (about 2 minutes): cargo test -- --include-ignored runs it, as CI does"]
fn ui() {
    let t = trybuild::TestCases::new();
    if std::env::var("OCC_UI").as_deref() != Ok("locks") {
        t.compile_fail("tests/ui/fail/*.rs");
        t.pass("tests/ui/pass/*.rs");
    }
    if cfg!(feature = "sqlite") {
        t.compile_fail("tests/ui/locks/*.rs");
    }
    if cfg!(feature = "async-sqlite") {
        t.compile_fail("tests/ui/locks-async/*.rs");
    }
    if cfg!(feature = "postgres") {
        t.compile_fail("tests/ui/locks-pg/*.rs");
    }
    if cfg!(all(feature = "postgres", not(feature = "r2d2"))) {
        t.compile_fail("tests/ui/locks-pooled/r2d2-feature-off.rs");
    }
    if cfg!(all(feature = "async-postgres", not(feature = "deadpool"))) {
        t.compile_fail("tests/ui/locks-pooled/deadpool-feature-off.rs");
    }
    if cfg!(all(feature = "async-postgres", not(feature = "bb8"))) {
        t.compile_fail("tests/ui/locks-pooled/bb8-feature-off.rs");
    }
}
