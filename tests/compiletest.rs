//! Compile tests: each mistake in `tests/ui/fail` must be reported at its
//! culprit with a `help:` line (the expected output is the `.stderr` beside
//! it), and each model in `tests/ui/pass` must compile and work. They need only
//! the default `sqlite` feature.
//!
//! `tests/ui/locks` (a row lock on a SQLite connection) must give the same
//! message whichever other backends are compiled in, SQLite alone (what
//! `cargo test` on a fresh machine compiles) included: CI runs it in each
//! combination with `OCC_UI=locks`, which skips the rest.
//! `tests/ui/locks-async` holds the same on diesel-async's SQLite connection
//! (feature `async-sqlite`).

#[test]
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
}
